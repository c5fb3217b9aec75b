"""A SoftHSM2 token for the tests whose CA keys live in PKCS#11.

SoftHSM reads ``SOFTHSM2_CONF`` once per process, when the PKCS#11 library is first
initialised, and lists the tokens there then; so a test process gets one token directory
and one token, made before anything loads the library, and every test uses its own key ids
(CA ids are random). Processes the tests start inherit the variable.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

from domain.adapters.pkcs11 import TokenSettings

SOFTHSM_MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")
TOKEN_LABEL = "pca-tests"


def init_token(directory: Path) -> TokenSettings:
    """A fresh token in ``directory``, made the process's SoftHSM configuration."""
    tokens = directory / "tokens"
    tokens.mkdir(parents=True)
    config = directory / "softhsm2.conf"
    config.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n")
    os.environ["SOFTHSM2_CONF"] = str(config)
    pin, so_pin = secrets.token_hex(8), secrets.token_hex(8)
    command = ["softhsm2-util", "--init-token", "--free", "--label", TOKEN_LABEL]
    subprocess.run(
        [*command, "--pin", pin, "--so-pin", so_pin],
        check=True,
        capture_output=True,
    )
    return TokenSettings(SOFTHSM_MODULE, TOKEN_LABEL, pin)


def token_env(token: TokenSettings, pin_file: Path) -> dict[str, str]:
    """The ``PCA_PKCS11_*`` variables that make a `pca` process use ``token``, the PIN
    written to ``pin_file`` (mode 0600) rather than put in the environment."""
    pin_file.write_text(token.pin + "\n")
    pin_file.chmod(0o600)
    return {
        "PCA_PKCS11_MODULE": str(token.module),
        "PCA_PKCS11_TOKEN_LABEL": token.token_label,
        "PCA_PKCS11_PIN_FILE": str(pin_file),
    }
