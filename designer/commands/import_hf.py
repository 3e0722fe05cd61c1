"""`designer import config.json [-o layout.yaml] [--json]`: a Hugging Face config as a layout YAML."""
from __future__ import annotations

import argparse
from pathlib import Path

from designer.cliutil import emit_json, fail
from designer.hf import layout_from_hf_config
from designer.layout import dump_yaml, layout_to_dict, parse_yaml_text, save_layout


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="a transformers config.json (nemotron_h, falcon_mamba, mamba, mamba2, llama, "
                                       "mistral, qwen2)")
    parser.add_argument("-o", "--output", help="write the layout YAML here (default: print it)")
    parser.add_argument("--name", help="layout name (default: from the config's _name_or_path or file name)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def run(args: argparse.Namespace) -> int:
    if args.output:
        from designer.commands._paths import check_output_file
        check_output_file(args.output, "-o")
    path = Path(args.config)
    if not path.is_file():
        fail(f"{args.config}: no such file")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        fail(f"{args.config}: cannot read: {e}")
    data = parse_yaml_text(text, source=args.config)
    if not isinstance(data, dict) or "model_type" not in data:
        fail(f"{args.config}: not a Hugging Face config (no 'model_type' key)")
    stem = path.stem if path.stem != "config" else path.parent.name
    layout = layout_from_hf_config(data, source=args.config, name=args.name or (
        None if data.get("_name_or_path") else (stem.lower() or None)))
    if args.output:
        save_layout(layout, args.output)
    if args.json:
        emit_json({"layout": layout_to_dict(layout), "output": args.output})
    elif not args.output:
        print(dump_yaml(layout), end="")
    else:
        print(f"wrote {args.output} ({layout.name}: {layout.num_layers} layers)")
    return 0
