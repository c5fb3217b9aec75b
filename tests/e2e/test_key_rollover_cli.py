"""`pca ca rollover` from the command line: the CA shows both keys and publishes a CRL
for each at its own URL."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli_runner import pca


def test_rolling_an_intermediate_over_from_the_cli_publishes_a_crl_per_key(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    pca(data, "quickstart", "--out", str(tmp_path / "out"))
    intermediate = next(
        ca
        for ca in json.loads(pca(data, "--json", "ca", "list").stdout)
        if ca["kind"] == "intermediate"
    )
    rolled = json.loads(pca(data, "--json", "ca", "rollover", intermediate["id"]).stdout)
    assert rolled["key_generations"].startswith("1 (software, serial ")
    assert ", 2* (software, serial " in rolled["key_generations"]
    listed = next(
        ca
        for ca in json.loads(pca(data, "--json", "ca", "list").stdout)
        if ca["id"] == intermediate["id"]
    )
    assert listed["key_generations"] == rolled["key_generations"]
    early = pca(data, "ca", "retire-key", intermediate["id"], "1", check=False)
    assert early.returncode != 0
    assert "may still be needed" in early.stderr
    assert intermediate["not_after"].removesuffix("Z") in early.stderr
    published = json.loads(pca(data, "--json", "crl", "publish", intermediate["id"]).stdout)
    assert {(item["generation"], item["kind"]) for item in published} == {
        (1, "base"),
        (1, "delta"),
        (2, "base"),
        (2, "delta"),
    }
    shown = json.loads(pca(data, "--json", "crl", "show", intermediate["id"]).stdout)
    urls = {item["url"] for item in shown if item["kind"] == "base"}
    assert urls == {
        f"http://pca.test/crl/{intermediate['id']}.crl",
        f"http://pca.test/crl/{intermediate['id']}-g2.crl",
    }
