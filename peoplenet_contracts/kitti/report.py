"""The outcome of validating a dataset: counts and problems as ``file:line: what is wrong``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from peoplenet_contracts.base import Contract

DEFAULT_MAX_PROBLEMS = 1000  # per list; the counts stay exact


def format_problem(path: str, line: int | None, what: str) -> str:
    """``file:line: what``, or ``file: what`` for a problem of the whole file (line None or 0)."""
    return f"{path}:{line}: {what}" if line else f"{path}: {what}"


class ValidationReport(Contract):
    """Counts of a KITTI dataset and every problem found. Errors reject the dataset; warnings do not."""

    schema_version: Literal[1] = 1
    location: str = Field(description="Folder or URL that was validated")
    images: int = Field(default=0, ge=0, description="Images paired or not with a label file")
    labelled_images: int = Field(default=0, ge=0, description="Images with at least one object")
    negative_images: int = Field(default=0, ge=0, description="Images without objects (empty or no label file)")
    label_files: int = Field(default=0, ge=0)
    boxes_per_class: dict[str, int] = Field(default_factory=dict)
    image_bytes: int = Field(default=0, ge=0)
    label_bytes: int = Field(default=0, ge=0)
    decoded: bool = Field(default=False, description="Whether every image was fully decoded")
    known_classes: list[str] | None = None
    errors: list[str] = Field(default_factory=list, description="'file:line: what' (first max_problems)")
    warnings: list[str] = Field(default_factory=list, description="'file:line: what' (first max_problems)")
    error_count: int = Field(default=0, ge=0)
    warning_count: int = Field(default=0, ge=0)
    max_problems: int = Field(default=DEFAULT_MAX_PROBLEMS, ge=1)

    @property
    def ok(self) -> bool:
        return self.error_count == 0

    @property
    def boxes(self) -> int:
        return sum(self.boxes_per_class.values())

    @property
    def total_bytes(self) -> int:
        return self.image_bytes + self.label_bytes

    def add_error(self, path: str, line: int | None, what: str) -> None:
        self.error_count += 1
        if len(self.errors) < self.max_problems:
            self.errors.append(format_problem(path, line, what))

    def add_warning(self, path: str, line: int | None, what: str) -> None:
        self.warning_count += 1
        if len(self.warnings) < self.max_problems:
            self.warnings.append(format_problem(path, line, what))

    def summary(self) -> str:
        """One line for logs and notifications."""
        verdict = "valid" if self.ok else f"INVALID ({self.error_count} errors)"
        return (
            f"{self.location}: {verdict}; {self.images} images ({self.negative_images} negative), "
            f"{self.boxes} boxes in {len(self.boxes_per_class)} classes, {self.warning_count} warnings"
        )
