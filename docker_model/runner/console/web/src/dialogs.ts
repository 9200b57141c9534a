// Modal dialogs: focus moves into the dialog and back to where it was when it closes; Esc closes it.

import { h } from "./dom.js";

let count = 0;

interface Choice {
  label: string;
  value: string;
  primary?: boolean;
  focus?: boolean; // the button that has focus when the dialog opens (else its first control)
}

/** Shows a modal dialog; resolves with the value of the button pressed, or "" when it was closed otherwise. */
export function choose(title: string, content: Node[], choices: Choice[], form?: HTMLFormElement): Promise<string> {
  const titleId = `dialog-title-${++count}`;
  const holder = form ?? h("form");
  holder.method = "dialog";
  holder.prepend(h("h2", { id: titleId }, title), ...content);
  const buttons = choices.map((choice) =>
    h(
      "button",
      { type: "submit", value: choice.value, class: choice.primary ? "primary" : null, formnovalidate: !choice.primary },
      choice.label,
    ),
  );
  holder.append(h("div", { class: "actions" }, ...buttons));
  const dialog = h("dialog", { "aria-labelledby": titleId }, holder);
  const before = document.activeElement;
  document.body.appendChild(dialog);
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      dialog.remove();
      if (before instanceof HTMLElement && before.isConnected) before.focus();
      resolve(dialog.returnValue);
    });
    dialog.returnValue = "";
    dialog.showModal();
    const focused = choices.findIndex((choice) => choice.focus);
    if (focused >= 0) buttons[focused]?.focus();
  });
}
