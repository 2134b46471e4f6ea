"""Personas and project types shape the system prompt."""

from __future__ import annotations

import pytest

from sandforge.agent.prompts import DEFAULT_AGENTS, PERSONAS, RULES, system_prompt
from sandforge.templates import TEMPLATES, get_template

TOOLS = ("list_files", "read_file", "write_file", "edit_file", "delete_file", "run_command")


def test_the_four_personas() -> None:
    assert set(PERSONAS) == {"frontend-dev", "ui-designer", "backend-dev", "qa-tester"}
    assert DEFAULT_AGENTS == ("frontend-dev",)
    assert len(set(PERSONAS.values())) == len(PERSONAS)


@pytest.mark.parametrize("persona", sorted(PERSONAS))
def test_each_persona_is_a_fragment_of_the_prompt(persona: str) -> None:
    prompt = system_prompt(get_template("web-app"), [persona])
    assert PERSONAS[persona] in prompt
    for other in set(PERSONAS) - {persona}:
        assert PERSONAS[other] not in prompt


def test_personas_keep_their_order_once_each() -> None:
    prompt = system_prompt(get_template("web-app"), ["qa-tester", "ui-designer", "qa-tester"])
    roles = prompt.split("Your roles:\n", 1)[1].splitlines()
    assert roles == [f"- {PERSONAS['qa-tester']}", f"- {PERSONAS['ui-designer']}"]


def test_no_persona_means_the_default() -> None:
    assert PERSONAS["frontend-dev"] in system_prompt(get_template("web-app"), [])


def test_unknown_persona() -> None:
    with pytest.raises(ValueError, match="unknown agents"):
        system_prompt(get_template("web-app"), ["wizard"])


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_the_project_type_says_stack_files_and_dev_server(name: str) -> None:
    template = get_template(name)
    prompt = system_prompt(template, ["frontend-dev"])
    assert f"Project type: {template.label}." in prompt
    assert template.stack in prompt
    assert f"The entry file is {template.entry_file}." in prompt
    for service in template.services:
        assert f"`{service.command}` on port {service.port}" in prompt
    assert "do not start them" in prompt


def test_the_rules_name_every_tool() -> None:
    for tool in TOOLS:
        assert tool in RULES
