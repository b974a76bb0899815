"""Slurm host lists: expansion, compression, and their round trip."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pilotkit_batch.hostlist import compress, expand


@pytest.mark.parametrize(
    ("expression", "hosts"),
    [
        ("", []),
        ("node1", ["node1"]),
        ("node[1-3,5]", ["node1", "node2", "node3", "node5"]),
        ("gpu[01-03]", ["gpu01", "gpu02", "gpu03"]),
        ("gpu[08-10]", ["gpu08", "gpu09", "gpu10"]),
        ("n[8-10]", ["n8", "n9", "n10"]),
        ("a[1-2]b[3-4]", ["a1b3", "a1b4", "a2b3", "a2b4"]),
        ("node[1-2],login1", ["node1", "node2", "login1"]),
        ("node[1-2]-ib,node[3]-ib", ["node1-ib", "node2-ib", "node3-ib"]),
        ("[1-2]x", ["1x", "2x"]),
        (" node1 , node2 ", ["node1", "node2"]),
        ("n[3,1,2]", ["n3", "n1", "n2"]),
        ("n[001-002,10]", ["n001", "n002", "n10"]),
    ],
)
def test_expand(expression: str, hosts: list[str]) -> None:
    assert expand(expression) == hosts


@pytest.mark.parametrize(
    "expression",
    ["node[1-3", "node1-3]", "node[[1]]", "node[3-1]", "node[a-b]", "node[]", "node[1-]"],
)
def test_expand_refuses_malformed_lists(expression: str) -> None:
    with pytest.raises(ValueError, match="host list"):
        expand(expression)


def test_expand_refuses_huge_lists() -> None:
    with pytest.raises(ValueError, match="more than 10 hosts"):
        expand("n[1-6],m[1-6]", max_hosts=10)


@pytest.mark.parametrize(
    ("hosts", "expression"),
    [
        ([], ""),
        (["node1"], "node1"),
        (["node1", "node2", "node3", "node5"], "node[1-3,5]"),
        (["gpu01", "gpu02", "gpu12"], "gpu[01-02,12]"),
        (["n9", "n10"], "n[9-10]"),
        (["n09", "n10"], "n[09-10]"),
        (["n1", "n02"], "n[1,02]"),
        (["node1", "node2", "login1"], "node[1-2],login1"),
        (["login", "node1"], "login,node1"),
        (["a1b3", "a1b4", "a2b3"], "a1b[3-4],a2b3"),
        (["n1-ib", "n2-ib"], "n[1-2]-ib"),
        (["n2", "n1"], "n[2,1]"),
        (["n1", "n1"], "n[1,1]"),
    ],
)
def test_compress(hosts: list[str], expression: str) -> None:
    assert compress(hosts) == expression
    assert expand(expression) == hosts


@pytest.mark.parametrize("host", ["", "a,b", "a[1]", "a b"])
def test_compress_refuses_names_a_host_list_cannot_hold(host: str) -> None:
    with pytest.raises(ValueError, match="cannot be part of a host list"):
        compress([host])


_NAME = st.text(alphabet="abcxyz-._0123456789", min_size=1, max_size=8)
_NUMBERED = st.builds(
    lambda prefix, number, width, suffix: f"{prefix}{number:0{width}d}{suffix}",
    st.sampled_from(["node", "gpu", "n", "cn-", "a1b"]),
    st.integers(min_value=0, max_value=120),
    st.integers(min_value=1, max_value=4),
    st.sampled_from(["", "-ib", ".cluster"]),
)


@given(st.lists(st.one_of(_NAME, _NUMBERED), max_size=30))
def test_expand_inverts_compress(hosts: list[str]) -> None:
    assert expand(compress(hosts)) == hosts


@given(
    st.lists(
        st.builds(lambda n: f"node{n:03d}", st.integers(min_value=0, max_value=999)),
        min_size=1,
        max_size=50,
        unique=True,
    ).map(sorted)
)
def test_sorted_numbered_hosts_compress_to_one_bracket(hosts: list[str]) -> None:
    expression = compress(hosts)
    assert expression.count("[") <= 1
    assert expand(expression) == hosts
