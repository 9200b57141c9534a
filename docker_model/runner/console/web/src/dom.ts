// Building the DOM: every text goes in as a text node, never as markup (the console shows model output and
// model metadata, which may hold HTML meant to run).

// A child is a node, or a value shown as its String() text (a number or an object from a model's config
// included: metadata is not always the type it should be); null, undefined and false are left out.
type Child = unknown;
type Attributes = Record<string, string | number | boolean | null | undefined>;

function apply(node: Element, attributes: Attributes): void {
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    node.setAttribute(name, value === true ? "" : String(value));
  }
}

function append(node: Node, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** An HTML element with attributes (an attribute set to false, null or undefined is left out) and children. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Attributes = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  apply(node, attributes);
  append(node, children);
  return node;
}

const SVG = "http://www.w3.org/2000/svg";

/** An SVG element, as `h` makes HTML ones. */
export function s<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attributes: Attributes = {},
  ...children: Child[]
): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG, tag);
  apply(node, attributes);
  append(node, children);
  return node;
}

/** Replaces a node's children. */
export function fill(node: Node, ...children: Child[]): void {
  while (node.firstChild) node.removeChild(node.firstChild);
  append(node, children);
}

/** A button that runs `action` when pressed. */
export function button(label: string, action: () => void, attributes: Attributes = {}): HTMLButtonElement {
  const node = h("button", { type: "button", ...attributes }, label);
  node.addEventListener("click", action);
  return node;
}

/** A labelled form field: the label, then the control, in one block. */
export function field(label: string, control: HTMLElement): HTMLElement {
  const id = control.id || `field-${++fieldCount}`;
  control.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, label), control);
}
let fieldCount = 0;
