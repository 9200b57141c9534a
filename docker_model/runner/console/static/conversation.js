const KEY = "docker-model-console.chat";
const EMPTY = { model: "", system: "", temperature: 0.7, maxTokens: 1024, messages: [] };
export function loadConversation() {
    try {
        const saved = JSON.parse(localStorage.getItem(KEY) ?? "{}");
        return { ...EMPTY, ...saved, messages: Array.isArray(saved.messages) ? saved.messages : [] };
    }
    catch {
        return { ...EMPTY, messages: [] };
    }
}
export function saveConversation(conversation) {
    try {
        localStorage.setItem(KEY, JSON.stringify(conversation));
        return null;
    }
    catch (error) {
        const full = error instanceof DOMException && error.name === "QuotaExceededError";
        return full
            ? "The conversation is not saved: the browser's storage for this page is full. Clear conversation frees it."
            : `The conversation is not saved: the browser refused its storage (${String(error)}).`;
    }
}
