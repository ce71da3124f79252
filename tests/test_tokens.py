"""Counts stay mistral-common's: the fast vocabulary, its cache, and the chat-template count.

`mistral_magic.money.tokens` counts plain text with Tekken's vocabulary on tiktoken and
text-only chat templates by mistral-common's v3 rules, without importing
mistral-common; these tests hold every count to mistral-common's own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mistral_magic.money import tokens, vocab
from mistral_magic.money.tokens import _mistral_common_count, _split_images, _template_count

SPECIAL_TEXT = ["[INST]", "[/INST]", "<s>", "</s>", "<unk>", "[TOOL_CALLS]", "[AVAILABLE_TOOLS]",
                "[TOOL_RESULTS]", "[IMG]", "[PREFIX]", "<SPECIAL_12>", "<pad>", "[SYSTEM_PROMPT]"]
CORPUS = [
    "", " ", "  ", "\n", "\n\n", "\r\n", "\t", "Hello", "Hello world", " Hello world ",
    "Hello world  ", "What is the capital of France?", "déjà vu", "naïve café résumé",
    "日本語のテキスト", "中文文本测试", "النص العربي", "עברית", "Ελληνικά", "Русский текст",
    "emoji 😀👍🏽🇫🇷 family 👨‍👩‍👧", "combining e\u0301 a\u0308", "zero\u200bwidth",
    "12345678901234567890", "3.14159 1e-9 0x1F", "def f(x):\n    return x ** 2\n",
    "```python\nprint('hi')\n```", "<div class=\"x\">&amp;</div>", "$x$ and $$y$$ cost $5",
    "tab\tand\vvertical\fform", "a" * 500, "ab " * 300, "\u00a0nbsp\u00a0", "lone \ud800 surrogate",
    "[INST] fake [/INST] turn </s><s>", "<SPECIAL_999>", " [INST]", "[INST][INST]",
    *SPECIAL_TEXT, *(f"x{s}y" for s in SPECIAL_TEXT),
]


@pytest.fixture(scope="module")
def tekken():
    """mistral-common's own Tekkenizer, the reference every count is held to."""
    return tokens.tokenizer().instruct_tokenizer.tokenizer


def test_plain_text_encodes_exactly_as_mistral_common(tekken):
    for text in CORPUS:
        assert tokens.encode_text(text) == tekken.encode(text, bos=False, eos=False), text
        assert tokens.count_text(text) == len(tekken.encode(text, bos=False, eos=False))
        if "\ud800" not in text:  # a lone surrogate is not UTF-8: it comes back replaced
            assert "".join(tokens.pieces(text)) == text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=200))
def test_any_text_encodes_exactly_as_mistral_common(tekken, text):
    assert tokens.encode_text(text) == tekken.encode(text, bos=False, eos=False)


def test_decoding_and_byte_pieces_match_mistral_common(tekken):
    ids = tekken.encode("Bonjour 😀 à tous", bos=True, eos=True)
    mixed = [3, *ids, 4, 5, *tekken.encode("日本", bos=False, eos=False), 2]
    assert tokens.decode(mixed) == tekken.decode(mixed)
    # A multi-byte character cut by a special token decodes as mistral-common's does.
    emoji = tekken.encode("😀", bos=False, eos=False)
    if len(emoji) > 1:
        split = [emoji[0], 3, *emoji[1:]]
        assert tokens.decode(split) == tekken.decode(split)
    vocabulary = tokens.vocabulary()
    for token_id in [*range(0, 1300, 7), *range(131000, 131072)]:
        assert vocabulary.byte_piece(token_id) == tekken.id_to_byte_piece(token_id)
    assert vocabulary.special == {"<s>": tekken.bos_id, "</s>": tekken.eos_id,
                                  "[INST]": tekken.get_special_token("[INST]"),
                                  "[/INST]": tekken.get_special_token("[/INST]")}
    assert vocabulary.num_special == tekken.num_special_tokens


# -- the chat template -----------------------------------------------------------------------

CONVERSATIONS = [
    [{"role": "user", "content": "Hello"}],
    [{"role": "user", "content": ""}],
    [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"}],
    [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "One?"},
     {"role": "assistant", "content": "Two.  "}, {"role": "user", "content": "Three?"}],
    [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
    [{"role": "user", "content": "a"}, {"role": "system", "content": "s"},
     {"role": "user", "content": "b"}],
    [{"role": "system", "content": "only a system prompt"}],
    [{"role": "system", "content": "s1"}, {"role": "system", "content": "s2"},
     {"role": "user", "content": "q"}],
    [{"role": "system", "content": ""}, {"role": "user", "content": "q"}],
    [{"role": "system", "content": "s"}, {"role": "assistant", "content": "first"},
     {"role": "user", "content": "q"}],
    [{"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "text", "text": "here"}]}],
    [{"role": "user", "content": "[INST] injected </s>"}, {"role": "assistant", "content": "<s>ok"},
     {"role": "user", "content": "déjà 😀"}],
    [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"},
     {"role": "assistant", "content": "b"}, {"role": "user", "content": "r"}],
    # A system message whose only text is empty still takes its place in the prompt.
    [{"role": "system", "content": [{"type": "text", "text": ""}]},
     {"role": "system", "content": "s"}, {"role": "user", "content": "q"}],
    [{"role": "assistant", "content": "   "}, {"role": "user", "content": "q"}],
]


@pytest.mark.parametrize("messages", CONVERSATIONS, ids=range(len(CONVERSATIONS)))
def test_text_conversations_are_counted_here_and_equal_mistral_common(messages):
    clean, _ = _split_images(messages)
    fast = _template_count(clean, None)
    assert fast is not None, "a text-only conversation should not need mistral-common"
    assert fast == _mistral_common_count(clean, None)


def test_other_shapes_go_to_mistral_common():
    tools = [{"type": "function", "function": {"name": "f", "description": "d",
                                               "parameters": {"type": "object", "properties": {}}}}]
    refused = [
        ([{"role": "user", "content": "q"}], tools),
        ([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], None),
        ([{"role": "assistant", "content": "a"}], None),
        ([{"role": "user", "content": "q"}, {"role": "assistant", "content": ""},
          {"role": "user", "content": "r"}], None),
        ([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"},
          {"role": "system", "content": "s"}, {"role": "user", "content": "r"}], None),
        ([{"role": "tool", "content": "x", "tool_call_id": "abcdefghi"}], None),
        ([{"role": "user", "content": "q", "name": "bob"}], None),
        ([{"role": "user", "content": None}], None),
        ([], None),
    ]
    for messages, with_tools in refused:
        assert _template_count(messages, with_tools) is None, messages
    # ... and count_messages still gives mistral-common's answer for them.
    for messages, with_tools in refused[:2]:
        assert tokens.count_messages(messages, with_tools) == _mistral_common_count(
            _split_images(messages)[0], with_tools)


_TEXT = st.one_of(st.sampled_from(["", " ", "  ", "\n\n", "Hello", "word  ", " x ", "😀", "[INST]",
                                   "</s>", "déjà vu", "a\n\nb"]), st.text(max_size=30))
_CONTENT = st.one_of(
    _TEXT,
    st.lists(st.builds(lambda t: {"type": "text", "text": t}, _TEXT), min_size=0, max_size=3),
)
_MESSAGE = st.builds(lambda role, content: {"role": role, "content": content},
                     st.sampled_from(["system", "user", "assistant"]), _CONTENT)


@settings(max_examples=400, deadline=None)
@given(st.lists(_MESSAGE, min_size=1, max_size=6))
def test_any_text_conversation_counts_as_mistral_common(messages):
    """Whatever shape the fast path accepts, its count is mistral-common's."""
    clean, _ = _split_images(messages)
    fast = _template_count(clean, None)
    if fast is not None:
        assert fast == _mistral_common_count(clean, None)


# -- the cached vocabulary -------------------------------------------------------------------


def test_cached_vocabulary_equals_the_tekken_file(tmp_path, tekken):
    source = vocab.tekken_path()
    ranks, config = vocab._read_tekken(source)
    first = vocab.load(source, cache=tmp_path)
    [cached] = list(tmp_path.iterdir())
    second = vocab.load(source, cache=tmp_path)  # from the cache this time
    stat = source.stat()
    key = {"format": vocab.CACHE_FORMAT, "source": str(source), "size": stat.st_size,
           "mtime_ns": stat.st_mtime_ns, "byteorder": sys.byteorder}
    assert vocab._read_cache(cached, key) == (ranks, json.loads(json.dumps(config)))
    for text in CORPUS:
        expected = tekken.encode(text, bos=False, eos=False)
        assert first.encode(text) == second.encode(text) == expected


def test_damaged_or_stale_cache_is_rebuilt(tmp_path, tekken):
    source = vocab.tekken_path()
    vocab.load(source, cache=tmp_path)
    [cached] = list(tmp_path.iterdir())
    whole = cached.read_bytes()
    for damaged in (whole[: len(whole) // 2], whole[:-1] + bytes([whole[-1] ^ 1]),
                    whole.replace(b'"size": ', b'"size": 1', 1), b"not a cache", b""):
        cached.write_bytes(damaged)
        loaded = vocab.load(source, cache=tmp_path)
        assert loaded.encode(CORPUS[7]) == tekken.encode(CORPUS[7], bos=False, eos=False)
        assert cached.read_bytes() == whole, "the cache is written again, whole"


def test_unwritable_cache_only_costs_the_speed(tmp_path, tekken):
    blocked = tmp_path / "a file, not a directory"
    blocked.write_text("x")
    loaded = vocab.load(cache=blocked / "cache")
    assert loaded.encode("Hello world") == tekken.encode("Hello world", bos=False, eos=False)


# -- warming up in the background ------------------------------------------------------------

_RACE = """
import sys, threading
from mistral_magic.money import tokens

start = threading.Barrier(3)
tools = [{"type": "function", "function": {"name": "f", "description": "d",
          "parameters": {"type": "object", "properties": {"x": {"type": "string"}}}}}]
def background():
    start.wait()
    tokens.warm().join()
served = []
def server_thread():  # as the in-process offline server counts a tool request
    start.wait()
    served.append(tokens.count_messages([{"role": "user", "content": "Use f"}], tools))
others = [threading.Thread(target=background), threading.Thread(target=server_thread)]
for thread in others:
    thread.start()
start.wait()
# The kernel thread imports mistral-common (which imports tiktoken) and counts with the
# vocabulary while the warm-up imports tiktoken and loads it, and another thread counts
# with mistral-common too.
with_tools = tokens.count_messages([{"role": "user", "content": "Use f"}], tools)
plain = tokens.count_text("Hello there, déjà vu")
for thread in others:
    thread.join(120)
    assert not thread.is_alive(), f"{thread} never finished"
assert served == [with_tools]
tekken = tokens.tokenizer().instruct_tokenizer.tokenizer
from mistral_common.protocol.instruct.request import ChatCompletionRequest
request = ChatCompletionRequest.from_openai([{"role": "user", "content": "Use f"}], tools=tools)
assert with_tools == len(tokens.tokenizer().encode_chat_completion(request).tokens)
assert plain == len(tekken.encode("Hello there, déjà vu", False, False))
print("ok", with_tools, plain)
"""


@pytest.mark.parametrize("cache", ["fresh", "cached"])
def test_warm_up_races_the_kernel_thread_without_deadlock(tmp_path, cache):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    if cache == "cached":
        subprocess.run([sys.executable, "-c", "from mistral_magic.money import tokens; tokens.vocabulary()"],
                       env=env, check=True, timeout=120)
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(_RACE)], env=env,
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok ")


def test_warm_is_idempotent_and_done_once_loaded():
    tokens.vocabulary()
    assert tokens.loaded() and tokens.warm() is None
