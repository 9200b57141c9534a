"""Chat templates render in a sandbox, with the special tokens and helpers templates rely on."""

from __future__ import annotations

import pytest

from docker_model.runner.shared.error_body import APIError
from docker_model.runner.worker.chat_template import ChatTemplate


def test_chatml_fallback() -> None:
    prompt = ChatTemplate(None).render([{"role": "user", "content": "hi"}])
    assert prompt == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_bos_token_content_parts_and_tojson() -> None:
    source = "{{ bos_token }}{% for m in messages %}{{ m.content }}|{{ m | tojson }}{% endfor %}"
    messages = [{"role": "user", "content": [{"type": "text", "text": "é<b>"}]}]
    assert ChatTemplate(source, bos_token="<s>").render(messages) == ('<s>é<b>|{"role": "user", "content": "é<b>"}')


def test_raise_exception_is_a_client_error() -> None:
    template = ChatTemplate("{{ raise_exception('roles must alternate') }}")
    with pytest.raises(APIError, match="roles must alternate"):
        template.render([{"role": "user", "content": "x"}])


def test_sandbox_blocks_attribute_escapes() -> None:
    template = ChatTemplate("{{ messages.__class__.__mro__ }}")
    with pytest.raises(APIError, match="is unsafe"):
        template.render([{"role": "user", "content": "x"}])
