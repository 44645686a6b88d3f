"""A session's automatic tags and capabilities (``relaybus.profiles.auto_names``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from relaybus.identity import session_identity
from relaybus.profiles import ProfileError, auto_names, name_slug


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


def profiles(tmp_path: Path, text: str, **env: str) -> dict[str, str]:
    """An environment whose ``profiles.toml`` holds ``text``, plus ``env``."""
    config = tmp_path / "config" / "relaybus"
    config.mkdir(parents=True)
    (config / "profiles.toml").write_text(text, encoding="utf-8")
    return {"XDG_CONFIG_HOME": str(tmp_path / "config"), "RELAYBUS_SESSION": "s", **env}


def test_profiles_toml_sets_the_automatic_names_of_every_session_at_its_top(
    tmp_path: Path, project: Path
) -> None:
    env = profiles(tmp_path, 'auto_tags = ["project"]\nauto_capabilities = []\n')

    identity = session_identity("codex", cwd=str(project), env=env)

    assert (identity.profile.tags, identity.profile.capabilities) == (["shop-api"], [])


@pytest.mark.parametrize(
    ("env", "tags", "caps"),
    [
        ({}, ["backend", "codex"], ["review", "pairing"]),  # the profile's over the file's
        (
            {"RELAYBUS_AUTO_TAGS": "project", "RELAYBUS_AUTO_CAPS": "chat"},
            ["backend", "shop-api"],
            ["review", "chat"],
        ),  # the environment's over both
    ],
)
def test_a_profile_s_automatic_names_override_the_file_s_and_the_environment_both(
    tmp_path: Path, project: Path, env: dict[str, str], tags: list[str], caps: list[str]
) -> None:
    text = """\
auto_tags = false
auto_capabilities = "chat"

[reviewer]
tags = ["backend"]
capabilities = ["review"]
auto_tags = ["tool"]
auto_capabilities = "pairing"
"""
    env = profiles(tmp_path, text, RELAYBUS_PROFILE="reviewer", **env)

    identity = session_identity("codex", cwd=str(project), env=env)

    assert (identity.profile.tags, identity.profile.capabilities) == (tags, caps)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('auto_tags = ["tool", "branch"]\n', "profiles.toml: auto_tags: unknown branch"),
        ("auto_capabilities = 3\n", "auto_capabilities must be a list of strings, or false"),
        ("[dev]\nauto_tags = [1]\n", "profile 'dev': auto_tags must be a list of strings"),
    ],
)
def test_bad_automatic_names_in_profiles_toml_are_a_profile_error(
    tmp_path: Path, project: Path, text: str, problem: str
) -> None:
    env = profiles(tmp_path, text, RELAYBUS_PROFILE="dev" if "[dev]" in text else "")

    with pytest.raises(ProfileError, match=re.escape(problem)):
        session_identity("codex", cwd=str(project), env=env)
