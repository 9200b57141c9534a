"""Rendering chat messages into a prompt with the model's Jinja chat template (sandboxed)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from docker_model.runner.shared.error_body import APIError

CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _raise_exception(message: str) -> None:
    raise TemplateError(message)


def _tojson(value: Any, indent: int | None = None, **_: Any) -> str:
    """Hugging Face's `tojson`: no HTML escaping, non-ASCII kept."""
    return json.dumps(value, ensure_ascii=False, indent=indent)


def _text_content(content: Any, where: str) -> str:
    """A message's content as the text a template expects: null (an assistant message that only calls
    tools) is empty, and text parts (`[{"type": "text", "text": ...}]`) are joined. Parts this text model
    cannot take are refused, naming the part."""
    if content is None or isinstance(content, str):
        return content or ""
    texts = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        param = f"{where}[{index}]"
        if kind not in ("text", "refusal"):
            raise APIError(
                400,
                f"{param}: content parts of type {kind!r} are not supported: this model reads text only",
                param=param,
            )
        text = part.get(kind)
        if not isinstance(text, str):
            raise APIError(400, f"{param}.{kind} must be a string", param=f"{param}.{kind}")
        texts.append(text)
    return "".join(texts)


class ChatTemplate:
    """A compiled chat template plus the special-token strings templates expect."""

    def __init__(self, source: str | None, bos_token: str = "", eos_token: str = ""):
        env = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
        )
        env.filters["tojson"] = _tojson
        env.globals["raise_exception"] = _raise_exception
        env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        self.source = source or CHATML_TEMPLATE
        self._template = env.from_string(self.source)
        self._tokens = {"bos_token": bos_token, "eos_token": eos_token}

    def render(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """The prompt for `messages`, ending with the assistant's generation prompt."""
        prepared = [
            {**message, "content": _text_content(message.get("content"), f"messages[{index}].content")}
            for index, message in enumerate(messages)
        ]
        try:
            return self._template.render(
                **(extra or {}),
                **self._tokens,
                messages=prepared,
                tools=tools,
                add_generation_prompt=True,
            )
        except TemplateError as exc:
            raise APIError(400, f"the chat template could not render these messages: {exc}") from exc
