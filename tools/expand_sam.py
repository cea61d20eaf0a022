"""Expand a SAM template into plain CloudFormation with aws-sam-translator, offline.

`.venv-sam/bin/python tools/expand_sam.py template.yaml build/template.expanded.json`, then `cfn-lint`
the output: recent cfn-lint alone skips several checks on SAM resources, the expanded template has
none left. Run it with the SAM CLI's own virtualenv (`make template-check` does): aws-sam-translator
pins pydantic to a narrower range than the project's environment.
Managed policy names would need IAM to resolve; this template names none, so the loader is empty.
Pseudo parameters need a region; us-east-1 unless AWS_DEFAULT_REGION says otherwise. Local code
paths (`CodeUri: .`) become placeholder S3 URIs, as `sam package` would make them.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

_LOCAL_CODE = {"AWS::Serverless::Function": ("CodeUri",), "AWS::Serverless::LayerVersion": ("ContentUri",)}


class _NoManagedPolicies:
    def load(self) -> dict[str, str]:
        return {}


def expand(template_path: Path) -> dict[str, object]:
    from samtranslator.translator.transform import transform
    from samtranslator.yaml_helper import yaml_parse

    template = yaml_parse(template_path.read_text())
    for name, resource in template.get("Resources", {}).items():
        properties = resource.get("Properties", {})
        for field in _LOCAL_CODE.get(resource.get("Type"), ()):
            if isinstance(properties.get(field), str) and not properties[field].startswith("s3://"):
                properties[field] = f"s3://packaged-artefacts/{name}.zip"
    expanded: dict[str, object] = transform(template, {}, _NoManagedPolicies())
    return expanded


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: expand_sam.py TEMPLATE OUTPUT.json", file=sys.stderr)
        return 2
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    output = Path(argv[2])
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(expand(Path(argv[1])), indent=2) + "\n")
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
