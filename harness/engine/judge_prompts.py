"""The judge's prompt: versioned templates, their hash stored with every result.

A template is text with placeholders ({instruction}, {input}, {reference}, {output}, {rubric};
pairwise: {output_a}, {output_b}), filled by plain replacement (an output with braces in it is
text, never a format field). The built-in templates carry a version; a suite's own `template`
is versioned by its hash. Changing either changes the hash, so cached grades of another prompt
are never reused and two results can be told apart by it.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.core.cache import fingerprint
from harness.core.judges import JudgeSpec
from harness.core.types import Chat, Example

SYSTEM = "You are a careful grader. You reply with the grade only."

BUILTIN: dict[str, tuple[str, str]] = {  # mode -> (version, template)
    "reference": ("reference-v1", (
        "Task given to the assistant: {instruction}\n\n"
        "Question:\n{input}\n\n"
        "Reference answer:\n{reference}\n\n"
        "Assistant's answer:\n{output}\n\n"
        "Compared with the reference answer, is the assistant's answer correct, partially correct, or wrong? "
        "Reply with one word: correct, partial or wrong.")),
    "rubric": ("rubric-v1", (
        "Task given to the assistant: {instruction}\n\n"
        "Question:\n{input}\n\n"
        "Assistant's answer:\n{output}\n\n"
        "Rubric:\n{rubric}\n\n"
        "Score the assistant's answer by the rubric, from 1 (worst) to 5 (best). Reply with one digit.")),
    "pairwise": ("pairwise-v1", (
        "Task given to the assistants: {instruction}\n\n"
        "Question:\n{input}\n\n"
        "Reference answer:\n{reference}\n\n"
        "Answer A:\n{output_a}\n\n"
        "Answer B:\n{output_b}\n\n"
        "Which answer is better? Reply with A, B or tie.")),
}


@dataclass(frozen=True)
class JudgeTemplate:
    version: str  # "reference-v1", or "custom" for a suite's own template
    text: str
    rubric: str

    @property
    def sha256(self) -> str:
        return fingerprint({"system": SYSTEM, "text": self.text, "rubric": self.rubric}, length=16)

    def chat(self, instruction: str, example: Example, output: str = "", output_b: str = "") -> Chat:
        """The judge's messages for one output (pairwise: `output` is A, `output_b` is B)."""
        values = {"{instruction}": instruction, "{input}": example.input,
                  "{reference}": " | ".join(example.references()), "{rubric}": self.rubric,
                  "{output}": output, "{output_a}": output, "{output_b}": output_b}
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": _fill(self.text, values)}]


def _fill(text: str, values: dict[str, str]) -> str:
    """Replace placeholders in one pass, so a value that contains a placeholder stays as it is."""
    import re

    pattern = re.compile("|".join(re.escape(k) for k in values))
    return pattern.sub(lambda m: values[m.group(0)], text)


def template_for(spec: JudgeSpec) -> JudgeTemplate:
    if spec.template:
        return JudgeTemplate("custom", spec.template, spec.rubric)
    version, text = BUILTIN[spec.mode]
    return JudgeTemplate(version, text, spec.rubric)
