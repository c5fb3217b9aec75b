// Conveniences only; every form works without this script.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // "Copy PEM": shown only where the clipboard can be written.
  for (const button of document.querySelectorAll("button.copy[data-copy]")) {
    if (!navigator.clipboard) continue;
    button.hidden = false;
    button.addEventListener("click", async () => {
      const source = document.getElementById(button.dataset.copy);
      await navigator.clipboard.writeText(source.textContent);
      button.textContent = "Copied";
    });
  }
  // "Add a SAN row": a new row in place instead of sending the form back.
  const rows = document.querySelector(".san-rows");
  const add = document.querySelector("button.add-san");
  if (rows && add) {
    add.addEventListener("click", (event) => {
      const count = rows.querySelectorAll(".san-row").length;
      if (count >= Number(rows.dataset.max)) return;
      event.preventDefault();
      const row = rows.lastElementChild.cloneNode(true);
      for (const control of row.querySelectorAll("select, input")) {
        control.name = control.name.replace(/\[\d+\]/, `[${count}]`);
        control.id = control.id.replace(/-\d+-/, `-${count}-`);
        control.removeAttribute("aria-invalid");
        control.removeAttribute("aria-describedby");
        if (control.tagName === "INPUT") control.value = "";
      }
      for (const label of row.querySelectorAll("label")) {
        label.htmlFor = label.htmlFor.replace(/-\d+-/, `-${count}-`);
        label.textContent = label.textContent.replace(/\d+/, String(count + 1));
      }
      for (const error of row.querySelectorAll(".field-error")) error.remove();
      rows.appendChild(row);
      row.querySelector("input").focus();
      if (count + 1 >= Number(rows.dataset.max)) add.hidden = true;
    });
  }
});
