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

export function saveConversation(conversation: Conversation): void {
  localStorage.setItem(KEY, JSON.stringify(conversation));
}
