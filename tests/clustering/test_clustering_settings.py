"""The ``clustering`` config section: the schema validates it, :class:`ClusteringSettings` holds it.

ClusteringSettings no longer checks values itself; what it used to reject is rejected by
:func:`masterkey.core.config.validate_config` with a message naming the key.
"""

from __future__ import annotations

import pytest
import yaml

from masterkey.clustering.settings import ClusteringSettings
from masterkey.core.config import validate_config
from masterkey.core.errors import ConfigError


def config_with(**clustering) -> dict:
    return {"models": ["demo"], "clustering": dict(clustering)}


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"threshold": 1.5}, "clustering.threshold"),
        ({"threshold": -0.1}, "clustering.threshold"),
        ({"k": 1}, "clustering.k"),
        ({"kernel_sizes": [2]}, "clustering.kernel_sizes[0]"),
        ({"kernel_sizes": [7, 7]}, "clustering.kernel_sizes"),
        ({"kernel_sizes": []}, "clustering.kernel_sizes"),
        ({"kernel_sizes": 7}, "clustering.kernel_sizes"),
        ({"max_kernels_per_model": 0}, "clustering.max_kernels_per_model"),
        ({"latent_dim": 0}, "clustering.latent_dim"),
        ({"hidden_widths": 5}, "clustering.hidden_widths"),
        ({"hidden_widths": [64, 0]}, "clustering.hidden_widths[1]"),
        ({"epochs": 0}, "clustering.epochs"),
        ({"min_steps": -1}, "clustering.min_steps"),
        ({"restarts": 0}, "clustering.restarts"),
        ({"batch_size": 0}, "clustering.batch_size"),
        ({"learning_rate": 0}, "clustering.learning_rate"),
        ({"kmeans_n_init": 0}, "clustering.kmeans_n_init"),
        ({"raw_kmeans_max_kernels": 0}, "clustering.raw_kmeans_max_kernels"),
        ({"num_candidates": 0}, "clustering.num_candidates"),
        ({"num_master_keys": 0}, "clustering.num_master_keys"),
    ],
)
def test_schema_rejects_bad_values_naming_the_key(values, key):
    with pytest.raises(ConfigError) as err:
        validate_config(config_with(**values))
    assert err.value.key == key
    assert f"config key {key}:" in str(err.value)


def test_more_master_keys_than_candidates_is_rejected():
    with pytest.raises(ConfigError, match=r"\(9\) must not exceed num_candidates \(8\)") as err:
        validate_config(config_with(num_master_keys=9, num_candidates=8))
    assert err.value.key == "clustering.num_master_keys"
    assert "clustering.num_master_keys" in str(err.value)
    # the default num_candidates (50) counts as well
    with pytest.raises(ConfigError, match="must not exceed num_candidates"):
        validate_config(config_with(num_master_keys=51))
    validate_config(config_with(num_master_keys=8, num_candidates=8))  # equal is fine


def test_unknown_key_is_rejected_with_a_suggestion():
    with pytest.raises(ConfigError, match="unknown config key") as err:
        validate_config(config_with(treshold=0.5))
    assert "clustering.'treshold'" in str(err.value) and "did you mean 'threshold'" in str(err.value)
    with pytest.raises(TypeError, match="treshold"):
        ClusteringSettings.from_section({"treshold": 0.5})


def test_settings_from_a_validated_config():
    config = validate_config(config_with(threshold=0.7, hidden_widths=[32, 16], num_master_keys=6))
    settings = ClusteringSettings.from_config(config)
    assert settings.threshold == 0.7 and settings.num_master_keys == 6
    assert settings.hidden_widths == (32, 16)  # lists from the config become tuples
    assert settings.kernel_sizes is None  # every size the models have
    sizes = ClusteringSettings.from_config(validate_config(config_with(kernel_sizes=[3, 5])))
    assert sizes.kernel_sizes == (3, 5)
    assert ClusteringSettings.from_section(None) == ClusteringSettings()


def test_epochs_are_raised_to_reach_min_steps():
    settings = ClusteringSettings(epochs=2, min_steps=100, batch_size=10)
    assert settings.epochs_for(1000) == 2  # 100 steps per epoch
    assert settings.epochs_for(95) == 10  # 10 steps per epoch
    assert settings.epochs_for(0) == 100


def test_schema_matches_settings(repo_root):
    schema = yaml.safe_load((repo_root / "workflow/schemas/config.schema.yaml").read_text())
    properties = schema["properties"]["clustering"]["properties"]
    defaults = {key: spec["default"] for key, spec in properties.items()}
    assert defaults == ClusteringSettings().as_dict()
    assert all(spec.get("description") for spec in properties.values())
