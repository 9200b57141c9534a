import { describe, getJSON } from "./api.js";
import { loadConversation, saveConversation } from "./conversation.js";
import { button, field, fill, h } from "./dom.js";
import { displayName, number } from "./format.js";
import { renderMarkdown } from "./markdown.js";
import { streamChat } from "./stream.js";
function figuresText(message) {
    const parts = [];
    const figures = message.figures;
    if (figures) {
        parts.push(figures.tokensPerSecond === null ? "— tok/s" : `${number(figures.tokensPerSecond)} tok/s`);
        parts.push(figures.ttft === null ? "TTFT —" : `TTFT ${number(figures.ttft, 2)} s`);
        parts.push(`${figures.tokens} tokens`);
    }
    if (message.stopped)
        parts.push("stopped");
    return parts.join(" · ");
}
function messageView(message) {
    if (message.role === "user") {
        return h("article", { class: "turn user" }, h("h3", {}, "You"), h("p", { class: "user-text" }, message.content));
    }
    const content = h("div", { class: "markdown" });
    content.append(renderMarkdown(message.content));
    return h("article", { class: "turn assistant" }, h("h3", {}, message.model ? `Assistant (${displayName(message.model)})` : "Assistant"), message.reasoning ? h("details", {}, h("summary", {}, "Reasoning"), h("p", { class: "user-text" }, message.reasoning)) : null, content, message.error ? h("p", { class: "error" }, `Error: ${message.error}`) : null, h("p", { class: "figures" }, figuresText(message)));
}
export function mountChat(main) {
    const conversation = loadConversation();
    const message = h("p", { role: "alert", class: "error" });
    const model = h("select", { name: "model" });
    const system = h("textarea", { name: "system", rows: 2 });
    const temperature = h("input", { type: "number", name: "temperature", min: 0, max: 2, step: 0.1 });
    const maxTokens = h("input", { type: "number", name: "max_tokens", min: 1, step: 1 });
    const input = h("textarea", { name: "message", rows: 3 });
    const sendButton = h("button", { type: "submit", class: "primary" }, "Send");
    const stopButton = button("Stop", () => controller?.abort(), { disabled: true });
    const clearButton = button("Clear conversation", clear);
    const turns = h("section", { "aria-label": "Conversation", class: "conversation" });
    const composer = h("form", { class: "composer" }, field("Message", input), h("div", { class: "actions" }, sendButton, stopButton, clearButton));
    system.value = conversation.system;
    temperature.value = String(conversation.temperature);
    maxTokens.value = String(conversation.maxTokens);
    fill(main, h("h2", {}, "Chat"), h("div", { class: "chat-settings" }, field("Model", model), field("Temperature", temperature), field("Max tokens", maxTokens), field("System prompt", system)), turns, message, composer);
    let controller = null;
    function show() {
        fill(turns, ...conversation.messages.map(messageView));
    }
    function remember() {
        conversation.model = model.value;
        conversation.system = system.value;
        conversation.temperature = temperature.valueAsNumber;
        conversation.maxTokens = maxTokens.valueAsNumber;
        save();
    }
    function save() {
        const problem = saveConversation(conversation);
        if (problem)
            message.textContent = problem;
    }
    function clear() {
        controller?.abort();
        conversation.messages = [];
        remember();
        show();
        input.focus();
    }
    async function models() {
        const stored = await getJSON("/models");
        const chat = stored.filter((one) => !one.capabilities?.length || one.capabilities.includes("chat"));
        const tags = chat.flatMap((one) => one.tags).sort((a, b) => displayName(a).localeCompare(displayName(b)));
        fill(model, ...tags.map((tag) => h("option", { value: tag }, displayName(tag))), !tags.length && h("option", { value: "" }, "No chat model: pull one in Models"));
        if (tags.includes(conversation.model))
            model.value = conversation.model;
    }
    function checked() {
        if (!model.value)
            return "Pick a model (pull one in Models first)";
        const t = temperature.valueAsNumber;
        if (!Number.isFinite(t) || t < 0 || t > 2)
            return "Temperature must be a number from 0 to 2";
        const m = maxTokens.valueAsNumber;
        if (!Number.isInteger(m) || m < 1)
            return "Max tokens must be a whole number of 1 or more";
        if (!input.value.trim())
            return "Write a message first";
        return null;
    }
    async function ask() {
        const problem = checked();
        message.textContent = problem ?? "";
        if (problem)
            return;
        remember();
        const history = conversation.messages
            .filter((turn) => !turn.error)
            .map((turn) => ({ role: turn.role, content: turn.content }));
        const question = { role: "user", content: input.value.trim() };
        const answer = { role: "assistant", content: "", model: model.value };
        conversation.messages.push(question, answer);
        input.value = "";
        show();
        const view = turns.lastElementChild;
        const content = view?.querySelector(".markdown");
        let pending = false;
        const redraw = () => {
            pending = false;
            if (content)
                fill(content, renderMarkdown(answer.content));
        };
        controller = new AbortController();
        sendButton.disabled = true;
        stopButton.disabled = false;
        turns.setAttribute("aria-busy", "true");
        const messages = [
            ...(system.value.trim() ? [{ role: "system", content: system.value.trim() }] : []),
            ...history,
            { role: "user", content: question.content },
        ];
        try {
            answer.figures = await streamChat({ model: model.value, messages, temperature: temperature.valueAsNumber, max_tokens: maxTokens.valueAsNumber }, controller.signal, (text, reasoning) => {
                answer.content += text;
                if (reasoning)
                    answer.reasoning = (answer.reasoning ?? "") + reasoning;
                if (!pending) {
                    pending = true;
                    requestAnimationFrame(redraw);
                }
            });
            answer.stopped = controller.signal.aborted;
        }
        catch (error) {
            answer.error = describe(error);
        }
        finally {
            controller = null;
            sendButton.disabled = false;
            stopButton.disabled = true;
            turns.removeAttribute("aria-busy");
            if (conversation.messages.includes(answer))
                save();
            show();
            input.focus();
        }
    }
    composer.addEventListener("submit", (event) => {
        event.preventDefault();
        if (!controller)
            void ask();
    });
    input.addEventListener("keydown", (event) => {
        if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
            event.preventDefault();
            composer.requestSubmit();
        }
    });
    for (const control of [model, system, temperature, maxTokens])
        control.addEventListener("change", remember);
    show();
    void models().catch((error) => {
        message.textContent = describe(error);
    });
    return () => controller?.abort();
}
