"""designer/app/state.py without a page: parsing an uploaded layout."""
import pytest

from designer.app import state
from designer.layout import LayoutError


def test_parse_upload_reads_yaml_and_hf_config_json():
    yaml_text = b"name: tiny\nhidden_size: 64\nvocab_size: 100\npattern: M-\nmamba: {num_heads: 2, n_groups: 1}\n" \
                b"mlp: {intermediate_size: 128}\n"
    assert state.parse_upload("tiny.yaml", yaml_text).pattern == "M-"
    cfg = (b'{"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, '
           b'"num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100}')
    assert state.parse_upload("config.json", cfg).pattern == "*-*-"


@pytest.mark.parametrize("data,message", [
    (b"\xff\xfe\x00binary", "not UTF-8"),
    (b"x" * ((1 << 20) + 1), "limit 1024 kB"),
    (b"name: [", "malformed YAML"),
])
def test_parse_upload_rejects_with_the_file_name(data, message):
    with pytest.raises(LayoutError, match=message) as e:
        state.parse_upload("mine.yaml", data)
    assert str(e.value).startswith("mine.yaml")
