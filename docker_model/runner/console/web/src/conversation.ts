// The chat's conversation and settings, kept in localStorage until cleared (never the token: that stays in
// sessionStorage).

import type { Figures } from "./stream.js";

export interface Message {
  role: "user" | "assistant";
  content: string;
  reasoning?: string;
  model?: string;
  figures?: Figures;
  stopped?: boolean;
  error?: string;
}

export interface Conversation {
  model: string;
  system: string;
  temperature: number;
  maxTokens: number;
  messages: Message[];
}

const KEY = "docker-model-console.chat";
const EMPTY: Conversation = { model: "", system: "", temperature: 0.7, maxTokens: 1024, messages: [] };

export function loadConversation(): Conversation {
  try {
    const saved = JSON.parse(localStorage.getItem(KEY) ?? "{}") as Partial<Conversation>;
    return { ...EMPTY, ...saved, messages: Array.isArray(saved.messages) ? saved.messages : [] };
  } catch {
    return { ...EMPTY, messages: [] }; // unreadable: start afresh
  }
}

/** Saves the conversation; returns null, or why it could not be saved (it still shows until the page closes). */
export function saveConversation(conversation: Conversation): string | null {
  try {
    localStorage.setItem(KEY, JSON.stringify(conversation));
    return null;
  } catch (error) {
    const full = error instanceof DOMException && error.name === "QuotaExceededError";
    return full
      ? "The conversation is not saved: the browser's storage for this page is full. Clear conversation frees it."
      : `The conversation is not saved: the browser refused its storage (${String(error)}).`;
  }
}
