"""A session's automatic tags and capabilities (``relaybus.identity.auto_names``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from relaybus.identity import ProfileError, auto_names, name_slug, session_identity


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A repository ``shop-api`` (a folder holding ``.git``) with a ``src`` folder."""
    root = tmp_path / "shop-api"
    (root / ".git").mkdir(parents=True)
    (root / "src").mkdir()
    return root


def test_a_session_gets_its_tool_its_repository_and_chat_after_its_own_names(
    project: Path,
) -> None:
    env = {"RELAYBUS_SESSION": "s", "RELAYBUS_TAGS": "backend,claude", "RELAYBUS_CAPS": "review"}

    identity = session_identity("claude", cwd=str(project / "src"), env=env)

    assert identity.profile.tags == ["backend", "claude", "shop-api"]
    assert identity.profile.capabilities == ["review", "chat"]


@pytest.mark.parametrize(
    ("auto_tags", "auto_caps", "tags", "caps"),
    [
        ("0", "", [], []),
        ("project", "chat,pairing", ["shop-api"], ["chat", "pairing"]),
        ("Tool", "off", ["codex"], []),
    ],
)
def test_automatic_names_are_configurable(
    project: Path, auto_tags: str, auto_caps: str, tags: list[str], caps: list[str]
) -> None:
    env = {"RELAYBUS_AUTO_TAGS": auto_tags, "RELAYBUS_AUTO_CAPS": auto_caps}

    assert auto_names("codex", str(project), env) == (tags, caps)


def test_an_unknown_automatic_tag_kind_is_a_profile_error(project: Path) -> None:
    with pytest.raises(ProfileError, match="RELAYBUS_AUTO_TAGS: unknown branch"):
        auto_names("codex", str(project), {"RELAYBUS_AUTO_TAGS": "tool,branch"})


def test_outside_a_repository_the_project_is_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "My Notes!"
    folder.mkdir()

    assert auto_names("gemini", str(folder), {}) == (["gemini", "My-Notes"], ["chat"])


def test_a_name_slug_is_a_valid_name_or_none() -> None:
    assert name_slug("_hidden project") == "hidden-project"
    assert name_slug("___") is None
    assert len(name_slug("x" * 300) or "") == 128


def test_a_session_of_an_unnamed_tool_gets_no_tool_tag(project: Path) -> None:
    assert auto_names("mcp", str(project), {}) == (["shop-api"], ["chat"])
