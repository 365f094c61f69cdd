"""Chat text of many kinds, for checking the token estimate against a real tokenizer.

Deterministic (seeded), so a failure names the same text every run.
"""

from __future__ import annotations

import base64
import random
import string

_rng = random.Random(20261201)


def _random(alphabet: str, length: int) -> str:
    return "".join(_rng.choice(alphabet) for _ in range(length))


KINDS: dict[str, str] = {
    "prose": "I think we should meet at the station around nine, then walk to the museum "
    "before lunch. What do you all think? ",
    "punctuated prose": "A longer message about tide pools and anemones, with punctuation; "
    "numbers 12345! ",
    "python": "```python\ndef share(total: float, people: int) -> float:\n"
    '    """Each person\'s part."""\n    return round(total / people, 2)\n```\n',
    "dense python": "```python\ndef f(x):\n    return {k: v for k, v in x.items()}\n```\n",
    "javascript": "const rows = items.filter((i) => i.ok).map(({ id, name }) => `${id}:${name}`);\n",
    "html": "<div class=\"msg\"><span id='a1'>Hi &amp; bye</span></div>\n",
    "json": '{"type": "message.send", "text": "hello", "client_msg_id": "abc-123"}\n',
    "markdown table": "| a | b | c |\n|---|---|---|\n| 1 | 2 | 3 |\n",
    "indented": "a\n\n\n    b\t\t",
    "url": "https://example.com/path/to/resource?query=value&other=123#frag ",
    "accents": "café, naïve, Ærø, smörgåsbord, Dvořák ",
    "russian": "Привет, как дела? Это длинное сообщение на русском языке. ",
    "arabic": "مرحبا كيف حالك هذا نص طويل باللغة العربية ",
    "hindi": "नमस्ते, आप कैसे हैं? यह एक लंबा संदेश है। ",
    "thai": "สวัสดีครับ วันนี้อากาศดีมาก ",
    "japanese": "日本語のテキストも数えます。東京は大きな都市です。",
    "chinese": "这是一个很长的中文句子，用来测试分词器。",
    "korean": "안녕하세요, 오늘 날씨가 좋네요. 회의는 몇 시에 시작하나요? ",
    "emoji": "Emoji 🎉🎉 and 👩‍👩‍👧‍👦 family ",
    "emoji only": "🎉😀🙈👍🏽❤️",
}


def text_of(kind: str, length: int = 1500) -> str:
    """About `length` characters of one kind (the sample repeated)."""
    sample = KINDS[kind]
    return (sample * (length // len(sample) + 1))[:length]


DENSE: dict[str, str] = {
    "base64 key": base64.b64encode(_rng.randbytes(1125)).decode(),
    "hex digest": _rng.randbytes(750).hex(),
    "digits": _random(string.digits, 1500),
    "random characters": _random(string.ascii_letters + string.digits + "!@#$%^&*()", 1500),
    "uuids": " ".join(str(_rng.getrandbits(128)) for _ in range(40)),
}

# Every text the tests count, by name.
CORPUS: dict[str, str] = {**{kind: text_of(kind) for kind in KINDS}, **DENSE}
