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
    localStorage.setItem(KEY, JSON.stringify(conversation));
}
