"""The model and weight-format tables of the README and docs, generated from the registry.

    python -m kerasnets.tables            # print both tables (markdown)
    python -m kerasnets.tables --update README.md docs/architectures.md

`--update` rewrites the text between `<!-- models:start -->` and
`<!-- models:end -->` (and `formats:`), so the committed tables cannot drift
from the code: tests/test_tables.py regenerates them and compares.
"""

from __future__ import annotations

import argparse
import re

COVERAGE = 0.95  # a layout "imports" a model when it names this share of its weighted layers
# ...and is named after the model or its family (see _meant_for).


def _meant_for(layout_name, model_name, family):
    """Layouts are named after what they serve ("torchvision-resnet"); coverage alone is not
    enough, since DenseNet's keras-style names would also fit the ResNet rules."""
    return any(key.replace("_", "-") in layout_name for key in (model_name, family))


def model_rows():
    """One row per registered model: name, family, task, input, params, reference, layouts.

    Each row also carries `weighted_layers`, the model's entry in the table `from_weights` ranks
    with (`kerasnets.identify`), so that one walk of the registry checks both generated files.
    """
    from kerasnets.identify import model_table_entry
    from kerasnets.presets import list_presets
    from kerasnets.registry import each_built_model, model_spec
    from kerasnets.summary import parameter_count
    from weights_io import LAYOUTS
    from weights_io.assign import weighted_layers

    presets_by_model = {}
    for preset in list_presets():
        presets_by_model.setdefault(preset.model, []).append(preset)
    rows = []
    for name, model in each_built_model():
        spec = model_spec(name)
        names = [layer.name for layer in weighted_layers(model)]
        # a preset's layout counts even when it needs other builder options (cadene-senet)
        preset_layouts = {p.layout for p in presets_by_model.get(name, [])}
        sources = sorted(
            layout.name
            for layout in LAYOUTS.values()
            if layout.name != "keras" and (layout.name in preset_layouts or _meant_for(layout.name, name, spec.family)
                                           and names and len(layout.map_names(names)) >= COVERAGE * len(names))
        )
        rows.append({
            "name": name,
            "family": spec.family,
            "task": spec.task,
            "input": spec.input_text,
            "params": parameter_count(model),
            "reference": spec.reference,
            "imports": sources,
            "presets": [(p.name, (p.accuracy or {}).get("top1")) for p in presets_by_model.get(name, [])],
            "weighted_layers": model_table_entry(model),
        })
    return rows


def models_markdown(rows):
    lines = [
        "| model | family | task | input | parameters | reproduces | imports from (besides Keras files) "
        "| weight presets (publisher's top-1 %) |",
        "|---|---|---|---|---:|---|---|---|",
    ]
    for r in rows:
        presets = ", ".join(f"`{n}`" + (f" {top1:g}" if top1 is not None else "") for n, top1 in r["presets"])
        lines.append(
            f"| `{r['name']}` | {r['family']} | {r['task']} | {r['input']} | {r['params']:,} | "
            f"{r['reference']} | {', '.join(f'`{s}`' for s in r['imports']) or '-'} | {presets or '-'} |"
        )
    return "\n".join(lines)


def formats_markdown():
    from weights_io import LAYOUTS, READERS

    lines = ["| format | reader | notes |", "|---|---|---|"]
    for fmt, reader in sorted(READERS.items()):
        doc = (reader.__doc__ or "").strip().splitlines()[0] if reader.__doc__ else ""
        lines.append(f"| `{fmt}` | `{reader.__module__}.{reader.__name__}` | {doc} |")
    lines += ["", "| layout | names |", "|---|---|"]
    for name, layout in sorted(LAYOUTS.items()):
        lines.append(f"| `{name}` | {layout.description} |")
    return "\n".join(lines)


def replace_section(text, tag, body):
    pattern = re.compile(rf"(<!-- {tag}:start -->\n)(?:.*?\n)?(<!-- {tag}:end -->)", re.S)
    if not pattern.search(text):
        return text
    return pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", nargs="*", help="files whose marked sections to rewrite")
    args = parser.parse_args(argv)
    models = models_markdown(model_rows())
    formats = formats_markdown()
    if not args.update:
        print(models + "\n\n" + formats)
        return 0
    for path in args.update:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        new = replace_section(replace_section(text, "models", models), "formats", formats)
        if new != text:
            with open(path, "w", encoding="utf-8") as f:
                f.write(new)
            print(f"updated {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
