import json

import pytest

from mona.data import Sample, detect_format, fingerprint, load_samples, render
from mona.errors import DataError

ALPACA = {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"}
CHAT = {
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
    ]
}
PR = {"prompt": "Capital of France?", "response": "Paris."}
TEXT = {"text": "Plain prose."}


def test_formats_detected_and_normalised():
    assert [detect_format(r) for r in (ALPACA, CHAT, PR, TEXT)] == ["alpaca", "chat", "prompt_response", "text"]
    a, c, p, t = [load_samples([r])[0] for r in (ALPACA, CHAT, PR, TEXT)]
    assert a.prompt == "Add the numbers.\n\n2 and 3" and a.response == "5"
    assert c.messages[0]["role"] == "system" and c.prompt == "Be brief.\n\nHi" and c.response == "Hello!"
    assert p.prompt == "Capital of France?" and p.response == "Paris."
    assert t.text == "Plain prose." and t.response == "Plain prose." and t.messages == []


def test_sharegpt_roles_accepted():
    s = load_samples([{"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}])[0]
    assert s.messages == [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]


def test_ids_stable_and_explicit():
    s1, s2 = load_samples([PR]), load_samples([dict(PR)])
    assert s1[0].id == s2[0].id and len(s1[0].id) == 16
    assert load_samples([{**PR, "id": 7}])[0].id == "7"
    assert load_samples([{"prompt": "other", "response": "x"}])[0].id != s1[0].id


def test_record_kept_and_source_label():
    s = load_samples([{**PR, "source": "gsm", "extra": [1, 2]}])[0]
    assert s.record["extra"] == [1, 2] and s.source == "gsm"


def test_files_roundtrip(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    jl = tmp_path / "a.jsonl"
    jl.write_text("\n".join(json.dumps(r) for r in (PR, {"prompt": "b", "response": "c"})) + "\n\n")
    js = tmp_path / "a.json"
    js.write_text(json.dumps([PR, {"prompt": "b", "response": "c"}]))
    pq_path = tmp_path / "a.parquet"
    pq.write_table(pa.Table.from_pylist([PR, {"prompt": "b", "response": "c"}]), pq_path)
    ids = [[s.id for s in load_samples(p)] for p in (jl, js, pq_path)]
    assert ids[0] == ids[1] == ids[2] and len(ids[0]) == 2


def test_hf_dataset_source():
    from datasets import Dataset

    ds = Dataset.from_list([ALPACA, {"instruction": "x", "input": "", "output": "y"}])
    assert [s.response for s in load_samples(ds)] == ["5", "y"]


def test_bad_json_line_names_file_and_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text(json.dumps(PR) + "\n{not json\n")
    with pytest.raises(DataError, match=r"bad\.jsonl:2: not valid JSON"):
        load_samples(p)


def test_missing_fields_list_expected_formats(tmp_path):
    p = tmp_path / "odd.jsonl"
    p.write_text(json.dumps(PR) + "\n" + json.dumps({"question_text": "?"}) + "\n")
    with pytest.raises(DataError, match=r"odd\.jsonl:2: .*'response'"):
        load_samples(p)
    with pytest.raises(DataError, match="expected one of the formats"):
        load_samples([{"foo": 1}])


def test_empty_input_and_wrong_types(tmp_path):
    p = tmp_path / "empty.jsonl"
    p.write_text("\n")
    with pytest.raises(DataError, match="no samples"):
        load_samples(p)
    with pytest.raises(DataError, match="no such file"):
        load_samples(tmp_path / "missing.jsonl")
    with pytest.raises(DataError, match="must be a string"):
        load_samples([{"prompt": 3, "response": "x"}])
    with pytest.raises(DataError, match="duplicate sample id"):
        load_samples([{**PR, "id": 1}, {"prompt": "b", "response": "c", "id": 1}])


def test_render_gemma_turns_without_template():
    s = load_samples([CHAT])[0]
    r = render(s, tokenizer=None)
    assert r.text == ("<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n")
    assert r.text[r.response_char_start :].startswith("Hello!")


def _render_with_template(tok, template: str):
    """Render the prompt/response sample with ``template`` set on the tokenizer for the call only."""
    tok.chat_template = template
    try:
        return render(load_samples([PR])[0], tok)
    finally:
        tok.chat_template = None


def test_render_with_chat_template(tiny):
    r = _render_with_template(
        tiny.tokenizer,
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}",
    )
    assert r.text == "<|user|>Capital of France?\n<|assistant|>Paris.\n"
    assert r.text[r.response_char_start :] == "Paris.\n"


def test_fingerprint_changes_with_content():
    a = [Sample("1", [{"role": "user", "content": "x"}])]
    b = [Sample("1", [{"role": "user", "content": "y"}])]
    assert fingerprint(a) == fingerprint(list(a)) != fingerprint(b)


def test_content_spans_cover_only_message_text():
    s = load_samples([CHAT])[0]
    r = render(s)
    assert [r.text[a:b] for a, b in r.content_spans] == ["Be brief.", "Hi", "Hello!"]
    lone = load_samples(
        [{"messages": [{"role": "system", "content": "Rules."}, {"role": "assistant", "content": "Ok."}]}]
    )[0]
    r = render(lone)
    assert [r.text[a:b] for a, b in r.content_spans] == ["Rules.", "Ok."]
    assert r.text[r.response_char_start :].startswith("Ok.")
    t = render(load_samples([TEXT])[0])
    assert t.content_spans == ((0, len("Plain prose.")),)


def test_content_spans_with_chat_template(tiny):
    r = _render_with_template(
        tiny.tokenizer,
        "{{ 'You are a helpful assistant.' }}{% for m in messages %}<|{{ m['role'] }}|>"
        "{{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}",
    )
    assert [r.text[a:b] for a, b in r.content_spans] == ["Capital of France?", "Paris."]
