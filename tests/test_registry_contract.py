"""Every registered builder keeps the project's contract (docs/contributing.md).

These checks fail fast before any layer is built, so they cover the whole
registry cheaply: the keras.applications signature, a docstring, and a
ValueError that names the problem for each kind of bad argument.
"""

import inspect

import pytest

import kerasnets

CLASSIFIERS = kerasnets.available_models(task="classification")
ALL = kerasnets.available_models()
KERAS_ARGS = ["include_top", "weights", "input_shape", "input_tensor", "pooling", "classes",
              "classifier_activation", "name"]


@pytest.mark.parametrize("name", ALL)
def test_builder_is_documented_and_exported(name):
    builder = kerasnets.model_spec(name).builder
    assert builder.__doc__ and len(builder.__doc__.strip()) > 20
    assert getattr(kerasnets, builder.__name__, None) is builder, f"{builder.__name__} not exported from kerasnets"


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifier_signature_matches_keras_applications(name):
    params = list(inspect.signature(kerasnets.model_spec(name).builder).parameters)
    assert params[: len(KERAS_ARGS)] == KERAS_ARGS


@pytest.mark.parametrize("name", ALL)
def test_unknown_option_is_a_value_error(name):
    with pytest.raises(ValueError, match="(?i)unknown option|unexpected"):
        kerasnets.build(name, definitely_not_an_option=1)


BAD = [
    ({"pooling": "mean"}, "pooling"),
    ({"input_shape": (224, 224)}, "input_shape"),
    ({"include_top": False, "input_shape": (8, 8, 3)}, "(?i)at least|too small"),
    ({"classes": 0}, "classes"),
    ({"weights": "imagenet", "include_top": False}, "(?i)preset|weights"),
]


@pytest.mark.parametrize("name", CLASSIFIERS)
@pytest.mark.parametrize("options,message", BAD, ids=["pooling", "rank", "too_small", "classes", "imagenet"])
def test_bad_arguments_are_value_errors(name, options, message, monkeypatch, tmp_path):
    # weights="imagenet": models with a preset say which file to put where (offline, empty
    # cache: never a download in tests); models without one say there is no preset.
    monkeypatch.setenv("KERASNETS_OFFLINE", "1")
    monkeypatch.setenv("KERASNETS_HOME", str(tmp_path))
    monkeypatch.delenv("KERASNETS_WEIGHTS_DIR", raising=False)
    if options.get("weights") == "imagenet" and kerasnets.presets.default_preset(name) is not None:
        # the missing file is reported before a single layer is built
        import keras

        layers = []
        original = keras.layers.Layer.__init__
        monkeypatch.setattr(keras.layers.Layer, "__init__",
                            lambda self, *a, **k: (layers.append(type(self).__name__), original(self, *a, **k))[1])
        with pytest.raises(kerasnets.presets.PresetUnavailableError, match="put it at"):
            kerasnets.build(name, **options)
        assert layers == [], f"{len(layers)} layers built before the error, from {layers[:3]}"
        return
    if name == "lenet5" and "input_shape" in options and options["input_shape"] == (8, 8, 3):
        options = dict(options, input_shape=(8, 8, 1))
    with pytest.raises(ValueError, match=message):
        kerasnets.build(name, **options)


@pytest.mark.parametrize("name", ALL)
def test_a_misspelt_argument_gets_its_correction(name):
    """Every builder names the argument a typo was meant to be, and lists the arguments it takes."""
    params = inspect.signature(kerasnets.model_spec(name).builder).parameters
    target = next(p for p in ("classes", "input_shape", "image_size") if p in params)
    typo = target[:2] + target[3:]  # "clases", "inut_shape", "imge_size"
    with pytest.raises(ValueError, match=rf"'{typo}' -> did you mean '{target}'\?") as err:
        kerasnets.build(name, **{typo: 5})
    accepted = str(err.value).split("Accepted: ")[1].split(", ")
    assert set(accepted) >= {p for p, v in params.items() if v.kind is not inspect.Parameter.VAR_KEYWORD}


@pytest.mark.parametrize("typed,meant", [("resnet5O", "resnet50"), ("resnet-50", "resnet50"), ("ResNet-50", "resnet50"),
                                         ("vgg_16", "vgg16"), ("inceptionv3", "inception_v3"),
                                         ("densnet121", "densenet121")])
def test_a_misspelt_model_name_suggests_the_model(typed, meant):
    with pytest.raises(ValueError, match="Did you mean") as err:
        kerasnets.build(typed)
    suggestion = str(err.value).split("Did you mean")[1]
    assert suggestion.index(repr(meant)) < (suggestion.index("?")), suggestion
    assert kerasnets.registry.suggest_models(typed)[0] == meant


def test_no_suggestion_for_a_name_like_nothing():
    with pytest.raises(ValueError) as err:
        kerasnets.build("zzz")
    assert "Did you mean" not in str(err.value)


@pytest.mark.parametrize("name,shape,fix", [("resnet50", (3, 224, 224), r"\(224, 224, 3\)"),
                                            ("lenet5", (1, 32, 32), r"\(32, 32, 1\)")])
def test_a_channels_first_shape_is_named(name, shape, fix):
    with pytest.raises(ValueError, match=rf"channels-first.*pass {fix}"):
        kerasnets.build(name, input_shape=shape)
