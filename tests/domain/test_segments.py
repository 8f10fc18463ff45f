"""Text segmentation, payload coding, UDH and reassembly of long messages."""


import pytest
from hypothesis import given, strategies as st

from hongyan.domain.segments import (
    ConcatInfo,
    Plan,
    Reassembler,
    concat_udh,
    count_parts,
    decode_payload,
    encode_chunk,
    encoding_of,
    length,
    plan,
    split_udh,
    split_with_seqno,
)

LIMITS = {"gsm7": (160, 153), "ucs2": (70, 67)}


def units(text, encoding):
    """Length of ``text`` when sent in ``encoding`` (a part may be plain ASCII inside a UCS2 message)."""
    if encoding == "gsm7":
        return len(text) + sum(text.count(c) for c in "^{}\\[~]|\f")
    return len(text.encode("utf-16-le")) // 2


# --- encoding class ----------------------------------------------------------

@pytest.mark.parametrize(
    "text, encoding",
    [
        ("Hello, world! @$_#%&*()\n\r", "gsm7"),
        ("^{}\\[~]|\f", "gsm7"),  # extension table
        ("price `5`", "ucs2"),  # backtick: ASCII but not GSM
        ("tab\there", "ucs2"),  # control characters other than LF, CR, FF
        ("café", "ucs2"),  # GSM has é, ASCII does not
        ("5€", "ucs2"),  # € is a GSM extension character but not ASCII
        ("验证码 1234", "ucs2"),
        ("", "gsm7"),
    ],
)
def test_encoding_of(text, encoding):
    assert encoding_of(text) == encoding
    assert plan(text).encoding == encoding


def test_length_counts_septets_and_units():
    assert length("a{") == 3
    assert length("中😀") == 3
    assert length("`") == 1


# --- boundaries ----------------------------------------------------------------

@pytest.mark.parametrize(
    "text, parts",
    [
        ("", 0),
        ("a", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("中" * 70, 1),
        ("中" * 71, 2),
        ("中" * 134, 2),
        ("中" * 135, 3),
        ("a" * 80 + "{" * 40, 1),  # 160 septets
        ("a" * 81 + "{" * 40, 2),  # 161 septets
        ("😀" * 35, 1),  # 70 units
        ("😀" * 35 + "a", 2),
    ],
)
def test_part_counts(text, parts):
    assert count_parts(text) == parts
    assert plan(text).count == parts


def test_empty_text_has_no_parts():
    assert plan("") == Plan("gsm7", ())


def test_extension_char_is_not_split_at_153():
    text = "a" * 152 + "{" + "b" * 20  # "{" would need septets 153 and 154
    chunks = plan(text).chunks
    assert chunks == ("a" * 152, "{" + "b" * 20)


def test_extension_char_fits_exactly_at_153():
    text = "a" * 151 + "{" + "b" * 20
    assert plan(text).chunks == ("a" * 151 + "{", "b" * 20)


def test_emoji_is_not_split_at_67():
    text = "中" * 66 + "😀" + "中" * 10
    chunks = plan(text).chunks
    assert chunks == ("中" * 66, "😀" + "中" * 10)
    assert [length(c) for c in chunks] == [66, 12]


def test_extension_chars_count_one_unit_in_ucs2():
    text = "中" + "{" * 100
    assert plan(text).chunks == ("中" + "{" * 66, "{" * 34)
    assert count_parts(text) == 2


def test_emoji_fits_exactly_at_67():
    text = "中" * 65 + "😀" + "中" * 10
    assert plan(text).chunks == ("中" * 65 + "😀", "中" * 10)


# --- properties -------------------------------------------------------------------

gsm_text = st.text(alphabet=st.sampled_from("abcXYZ019 .,!@\n{}[]^~|\\"), max_size=700)
mixed_text = st.text(alphabet=st.sampled_from("ab 1{~`中文é€😀\U0001F600"), max_size=500)
# UCS2 messages made almost entirely of GSM characters, extension ones included.
ucs2_gsm_text = st.builds(str.__add__, st.sampled_from(["中", "😀", "`"]), gsm_text)
any_text = st.one_of(gsm_text, mixed_text, ucs2_gsm_text, st.text(max_size=400))


@given(any_text)
def test_plan_properties(text):
    result = plan(text)
    assert "".join(result.chunks) == text
    assert count_parts(text) == result.count
    single, long = LIMITS[result.encoding]
    limit = single if result.count == 1 else long
    assert all(chunk and units(chunk, result.encoding) <= limit for chunk in result.chunks)
    # Greedy: each part but the last was full enough that the next character did not fit.
    for chunk, following in zip(result.chunks, result.chunks[1:]):
        assert units(chunk + following[0], result.encoding) > limit


# --- wire coding --------------------------------------------------------------------

def test_encode_chunk():
    assert encode_chunk("Hi{", "gsm7") == b"Hi{"
    assert encode_chunk("中😀", "ucs2") == b"\x4e\x2d\xd8\x3d\xde\x00"


@pytest.mark.parametrize(
    "data, msg_fmt, text",
    [
        (b"Hello", 0, "Hello"),
        ("中😀".encode("utf-16-be"), 8, "中😀"),
        ("中文".encode("gbk"), 15, "中文"),
        ("中文".encode("gbk"), 0, "中文"),  # Chinese sent with the wrong Msg_Fmt
        (b"\x00\xff", 4, "\x00\xff"),  # binary: one character per byte
        (b"caf\xe9", 3, "café"),
        ("中".encode("utf-16-be") + b"\x4e", 8, "中\ufffd"),  # odd length
        (b"\xd8\x3d\x00a", 8, "\ufffda"),  # lone high surrogate
        (b"\xd6\xd0\x81", 15, "中\ufffd"),  # GBK cut inside a character
        ("好".encode("utf-16-be"), 0x18, "好"),  # GSM DCS: UCS2, message class 0
        (b"hi", 0xF0, "hi"),  # GSM DCS: default alphabet, class 0
    ],
)
def test_decode_payload(data, msg_fmt, text):
    assert decode_payload(data, msg_fmt) == text


@given(st.binary(max_size=200), st.integers(0, 255), st.booleans())
def test_decode_payload_never_raises(data, msg_fmt, part):
    assert isinstance(decode_payload(data, msg_fmt, part=part), str)


# --- UDH --------------------------------------------------------------------------------

def test_concat_udh_bytes():
    assert concat_udh(0x2A, 3, 1) == b"\x05\x00\x03\x2a\x03\x01"


@pytest.mark.parametrize("ref, total, seq", [(256, 2, 1), (-1, 2, 1), (1, 2, 3), (1, 2, 0), (1, 256, 1)])
def test_concat_udh_rejects_bad_values(ref, total, seq):
    with pytest.raises(ValueError):
        concat_udh(ref, total, seq)


def test_split_udh_16_bit_reference():
    assert split_udh(b"\x06\x08\x04\x12\x34\x03\x02body") == (ConcatInfo(0x1234, 3, 2), b"body")


def test_split_udh_skips_other_elements():
    # A port-addressing IE (05) before the concatenation IE.
    payload = b"\x0b\x05\x04\x0b\x84\x23\xf0\x00\x03\x07\x02\x01body"
    assert split_udh(payload) == (ConcatInfo(7, 2, 1), b"body")
    assert split_udh(b"\x06\x05\x04\x0b\x84\x23\xf0body") == (None, b"body")


@pytest.mark.parametrize(
    "payload",
    [b"", b"\x05\x00\x03\x01", b"\x05\x00\x09\x01\x02\x01\x00", b"\x01", b"\x03\x00\x03\x01\x02\x01"],
)
def test_split_udh_malformed(payload):
    assert split_udh(payload) == (None, payload)


def test_split_udh_inconsistent_concat_is_dropped():
    assert split_udh(b"\x05\x00\x03\x01\x02\x03body") == (None, b"body")  # seq 3 of 2
    assert split_udh(b"\x05\x00\x03\x01\x00\x00body") == (None, b"body")  # total 0


@given(st.integers(0, 255), st.integers(1, 255).flatmap(lambda t: st.tuples(st.just(t), st.integers(1, t))), st.binary(max_size=140))
def test_udh_round_trip(ref, total_seq, body):
    total, seq = total_seq
    assert split_udh(concat_udh(ref, total, seq) + body) == (ConcatInfo(ref, total, seq), body)


@given(st.binary(max_size=40))
def test_split_udh_never_raises(payload):
    info, body = split_udh(payload)
    assert body == payload or payload.endswith(body)


# --- reassembly -----------------------------------------------------------------------------

@given(st.text(min_size=1, max_size=600), st.randoms(use_true_random=False))
def test_reassembler_shuffled_and_duplicated_parts(text, rnd):
    chunks = plan(text).chunks
    parts = list(enumerate(chunks, 1))
    parts += rnd.sample(parts, rnd.randint(0, len(parts)))  # duplicates
    rnd.shuffle(parts)
    reassembler = Reassembler()
    results = [reassembler.add(("ch", "13800138000", 9, len(chunks)), len(chunks), seq, chunk, 0.0) for seq, chunk in parts]
    whole = [r for r in results if r is not None]
    assert whole[:1] == [text]
    # Duplicates after completion open a new message; before it, they are ignored.
    first_done = results.index(text)
    assert all(r is None for r in results[:first_done])


def test_reassembler_expire_returns_partial_text():
    reassembler = Reassembler(timeout=10)
    assert reassembler.add("a", 3, 3, "c", now=0) is None
    assert reassembler.add("a", 3, 1, "a", now=1) is None
    assert reassembler.add("b", 2, 1, "x", now=5) is None
    assert reassembler.expire(now=9) == []
    assert reassembler.expire(now=10) == [("a", "ac")]
    assert len(reassembler) == 1
    assert reassembler.expire(now=100) == [("b", "x")]
    assert len(reassembler) == 0


def test_reassembler_flushes_oldest_when_full():
    reassembler = Reassembler(max_open=2)
    reassembler.add("a", 2, 1, "a1", now=0)
    reassembler.add("b", 2, 1, "b1", now=1)
    reassembler.add("c", 2, 2, "c2", now=2)
    assert len(reassembler) == 2
    assert reassembler.expire(now=3) == [("a", "a1")]
    assert reassembler.add("c", 2, 1, "c1", now=4) == "c1c2"


def test_reassembler_passes_unplaceable_parts_through():
    reassembler = Reassembler()
    assert reassembler.add("a", 1, 1, "single", now=0) == "single"
    assert reassembler.add("a", 2, 3, "seq beyond total", now=0) == "seq beyond total"
    assert reassembler.add("a", 2, 1, "first", now=0) is None
    assert reassembler.add("a", 3, 2, "other total", now=0) == "other total"
    assert len(reassembler) == 1


def test_reassembler_rejoins_surrogate_pair_split_by_the_sender():
    data = "ab😀".encode("utf-16-be")
    first = decode_payload(data[:6], 8, part=True)  # "ab" + high surrogate
    second = decode_payload(data[6:], 8, part=True)  # low surrogate
    reassembler = Reassembler()
    assert reassembler.add("k", 2, 2, second, now=0) is None
    assert reassembler.add("k", 2, 1, first, now=0) == "ab😀"


def test_reassembler_replaces_lone_surrogates_in_partial_text():
    reassembler = Reassembler(timeout=1)
    reassembler.add("k", 2, 1, decode_payload(b"\x00a\xd8\x3d", 8, part=True), now=0)
    assert reassembler.expire(now=5) == [("k", "a\ufffd")]


# --- numbered plain parts ------------------------------------------------------------------------

def test_split_with_seqno_short_text_is_unchanged():
    assert split_with_seqno("hello") == ["hello"]
    assert split_with_seqno("") == []


def test_split_with_seqno_chinese():
    parts = split_with_seqno("中" * 200)
    assert parts == [f"{i}/4)" + "中" * 66 for i in (1, 2, 3)] + ["4/4)中中"]


def test_split_with_seqno_two_digit_totals():
    parts = split_with_seqno("a" * 300, per_part=20)
    # 9 parts of 15 characters after "n/21)", 11 of 14 after "nn/21)", then the rest.
    assert len(parts) == 21
    assert parts[0] == "1/21)" + "a" * 15
    assert parts[9] == "10/21)" + "a" * 14
    assert parts[20] == "21/21)" + "a" * 11
    assert all(len(p) <= 20 for p in parts)


def test_split_with_seqno_rejects_tiny_parts():
    with pytest.raises(ValueError):
        split_with_seqno("a" * 100, per_part=5)


@given(any_text, st.integers(10, 200))
def test_split_with_seqno_properties(text, per_part):
    parts = split_with_seqno(text, per_part)
    assert all(units(p, encoding_of(text)) <= per_part for p in parts)
    if len(parts) > 1:
        total = len(parts)
        bodies = []
        for seq, part in enumerate(parts, 1):
            prefix = f"{seq}/{total})"
            assert part.startswith(prefix)
            bodies.append(part[len(prefix):])
        assert "".join(bodies) == text
    else:
        assert parts == ([text] if text else [])
