"""The README's model and format tables are what the registry generates today."""

import pathlib

from kerasnets import tables

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_tables_match_the_registry():
    text = README.read_text()
    rows = tables.model_rows()
    regenerated = tables.replace_section(
        tables.replace_section(text, "models", tables.models_markdown(rows)), "formats", tables.formats_markdown()
    )
    assert regenerated == text, "README tables are stale: run python -m kerasnets.tables --update README.md"
    import kerasnets

    assert len(rows) == len(kerasnets.available_models())
    vgg16 = next(r for r in rows if r["name"] == "vgg16")
    assert vgg16["params"] == 138_357_544 and "tensorflow-vgg" in vgg16["imports"]
    # the same walk checks the other generated file: the weighted layers `from_weights` ranks with
    from kerasnets.identify import weighted_layer_table

    table = weighted_layer_table()
    stale = [r["name"] for r in rows if table.get(r["name"]) != r["weighted_layers"]]
    assert not stale, f"{stale} changed since the table was written: python -m kerasnets.identify --refresh"


def test_replace_section_only_touches_marked_text():
    text = "a\n<!-- models:start -->\nold\n<!-- models:end -->\nb"
    assert tables.replace_section(text, "models", "new") == "a\n<!-- models:start -->\nnew\n<!-- models:end -->\nb"
    assert tables.replace_section("no markers", "models", "new") == "no markers"
