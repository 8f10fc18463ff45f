"""Parameters in every shape real clients send them."""
from __future__ import annotations

from urllib.parse import quote

from hongyan.dialects.params import parse, truthy

TEXT = "【公司】您好，验证码 1234 😀"


def test_gbk_percent_encoded_query():
    p = parse(f"msg={quote('【公司】您好'.encode('gbk'))}&uid=a".encode(), b"")
    assert p.encoding == "gb18030" and p.get("msg") == "【公司】您好" and p.get("uid") == "a"


def test_utf8_percent_encoded_form_body():
    p = parse(b"", f"msg={quote(TEXT)}".encode(), b"application/x-www-form-urlencoded")
    assert p.encoding == "utf-8" and p.get("msg") == TEXT


def test_raw_utf8_bytes_in_query_and_unencoded_body():
    p = parse(f"msg={TEXT}".encode(), b"", b"")
    assert p.get("msg") == TEXT
    p = parse(b"", f"uid=a&msg={'你好 世界'}".encode("gbk"), b"application/x-www-form-urlencoded")
    assert p.encoding == "gb18030" and p.get("msg") == "你好 世界"


def test_charset_in_content_type_wins():
    body = f"msg={quote('你好'.encode('gbk'))}".encode()
    p = parse(b"", body, b"application/x-www-form-urlencoded; charset=GBK")
    assert p.encoding == "gb18030" and p.get("msg") == "你好"


def test_query_and_body_merge_and_repeats_are_seen():
    p = parse(b"uid=a&pwd=1", b"msg=hi&pwd=2", b"application/x-www-form-urlencoded")
    assert p.get("uid") == "a" and p.get("msg") == "hi" and p.repeated() == ["pwd"]
    assert p.missing("uid", "mobs") == ["mobs"]


def test_plus_is_space_and_encoded_plus_is_plus():
    p = parse(b"a=1+2&b=1%2B2", b"")
    assert p.get("a") == "1 2" and p.get("b") == "1+2"


def test_unencoded_value_keeps_its_plus():
    p = parse(b"", "tele=13800138000&msg=验证码+1234 a+b".encode("gbk"), b"application/x-www-form-urlencoded")
    assert p.get("msg") == "验证码+1234 a+b" and p.get("tele") == "13800138000"


def test_json_body_is_left_alone():
    p = parse(b"op=sendSm", b'{"a": 1}', b"application/json")
    assert p.get("op") == "sendSm" and p.body == b'{"a": 1}' and "a" not in p.values


def test_truthy():
    assert all(truthy(v) for v in ("true", "True", "TRUE", "1"))
    assert not any(truthy(v) for v in ("false", "0", "", None))
