function apply(node, attributes) {
    for (const [name, value] of Object.entries(attributes)) {
        if (value === null || value === undefined || value === false)
            continue;
        node.setAttribute(name, value === true ? "" : String(value));
    }
}
function append(node, children) {
    for (const child of children) {
        if (child === null || child === undefined || child === false)
            continue;
        node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    }
}
export function h(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    apply(node, attributes);
    append(node, children);
    return node;
}
const SVG = "http://www.w3.org/2000/svg";
export function s(tag, attributes = {}, ...children) {
    const node = document.createElementNS(SVG, tag);
    apply(node, attributes);
    append(node, children);
    return node;
}
export function fill(node, ...children) {
    while (node.firstChild)
        node.removeChild(node.firstChild);
    append(node, children);
}
export function button(label, action, attributes = {}) {
    const node = h("button", { type: "button", ...attributes }, label);
    node.addEventListener("click", action);
    return node;
}
export function field(label, control) {
    const id = control.id || `field-${++fieldCount}`;
    control.id = id;
    return h("div", { class: "field" }, h("label", { for: id }, label), control);
}
let fieldCount = 0;
