// The sign-in dialog, shown whenever a route answers 401: the token goes to sessionStorage only (gone when
// the tab closes), never into a URL or localStorage.

import { field, h } from "./dom.js";

const TOKEN_KEY = "docker-model-console.token";

export function storedToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export class SignInCancelled extends Error {}

let pending: Promise<void> | null = null;

/** Asks for the token (once, however many requests wait for it); resolves once one is stored. */
export function signIn(why: string): Promise<void> {
  pending ??= ask(why).finally(() => {
    pending = null;
  });
  return pending;
}

function ask(why: string): Promise<void> {
  const token = h("input", {
    type: "password",
    name: "token",
    autocomplete: "off",
    spellcheck: "false",
    autocapitalize: "off",
    required: true,
  });
  const form = h(
    "form",
    { method: "dialog" },
    h("h2", { id: "signin-title" }, "Sign in"),
    h("p", {}, "This runner needs its token. `docker model status` on the runner's machine shows it."),
    h("p", { class: "error" }, why),
    field("Token", token),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Sign in")),
  );
  const dialog = h("dialog", { "aria-labelledby": "signin-title" }, form);
  const before = document.activeElement;
  document.body.appendChild(dialog);
  return new Promise((resolve, reject) => {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const value = token.value.trim();
      if (!value) return;
      sessionStorage.setItem(TOKEN_KEY, value);
      dialog.close("signed-in");
    });
    dialog.addEventListener("close", () => {
      dialog.remove();
      if (before instanceof HTMLElement) before.focus();
      if (dialog.returnValue === "signed-in") resolve();
      else reject(new SignInCancelled("not signed in: the runner asks for its token, sign in to go on"));
    });
    dialog.showModal();
    token.focus();
  });
}
