// The runner's JSON, as far as the console reads it (docker_model/api_types.py describes it in full).

export interface ModelInfo {
  id: string;
  tags: string[];
  created: number;
  config: {
    parameters?: string;
    quantization?: string;
    size?: string;
    architecture?: string;
    context_size?: number;
    gguf?: Record<string, unknown>;
  };
  capabilities: string[];
}

export interface LayerProgress {
  id: string;
  size: number;
  current: number;
}

export interface ProgressLine {
  type: "progress" | "success" | "warning" | "error";
  message: string;
  total?: number;
  layer?: LayerProgress;
}

export interface RunningModel {
  model_name: string;
  model_id: string;
  in_use: boolean;
  loading: boolean;
  keep_alive: string;
  until: number | null;
  context_size: number | null;
  sequences: number | null;
  memory_estimated: number | null;
  memory_measured: number | null;
}

export interface ModelSample {
  tokens_per_second: number;
  requests: number;
  errors: number;
  queue: number;
  ttft_seconds: number | null;
  memory_bytes: number;
}

export interface Sample {
  time: number;
  memory: { used: number; available: number; budget: number | null; limit: number };
  models: Record<string, ModelSample>;
}

export interface Alert {
  kind: "memory" | "queue" | "crash";
  model: string | null;
  message: string;
  since: number;
}

export interface History {
  interval_seconds: number;
  window_seconds: number;
  samples: Sample[];
  alerts: Alert[];
}

export interface RequestRecord {
  id: string;
  model: string;
  method: string;
  url: string;
  request: string;
  response?: string;
  error?: string;
  timestamp: number;
  status_code: number;
  duration_ms: number | null;
}

export interface ModelRequests {
  model: string;
  records: RequestRecord[];
}
