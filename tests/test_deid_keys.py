"""Keyed surrogates: the same real value gets the same surrogate in every note of a run, the
date shift is per patient, and the key never leaves memory (but reaches worker processes)."""
from datetime import date

import pytest
import spacy

from clinical_deid.dates import date_fields, find_dates
from tests.deid_pipelines import KEY, NOTE_ES, PATTERNS_ES, keyed, ruler_pipeline


def test_with_a_key_the_same_real_value_gets_the_same_surrogate_in_every_note():
    a = keyed("Nota 1: Ana García López vive en Getafe. Alta el 12/03/2019.",
               [("NOMBRE_SUJETO_ASISTENCIA", "Ana García López"), ("TERRITORIO", "Getafe"), ("FECHAS", "12/03/2019")])
    b = keyed("Otra nota, otro día: GARCÍA; de Getafe. Fue el 14/03/2019, ayer.",
               [("NOMBRE_SUJETO_ASISTENCIA", "GARCÍA"), ("TERRITORIO", "Getafe"), ("FECHAS", "14/03/2019")])
    assert b["Getafe"] == a["Getafe"]
    assert b["GARCÍA"] == a["Ana García López"].split()[1].upper()  # the surname alone, as in the full name
    # Different notes, no group: each its own date shift (as without a key) ...
    c = keyed("Otra nota, otro día: Fue el 14/03/2019, ayer.", [("FECHAS", "14/03/2019")], group="p1")
    d = keyed("Nota 1: Alta el 12/03/2019, sin más.", [("FECHAS", "12/03/2019")], group="p1")
    # ... one patient's notes (doc._.deid_group): one shift, so the interval stays.
    moved = [date(*reversed(date_fields(find_dates(x)[0][2]))) for x in (d["12/03/2019"], c["14/03/2019"])]
    assert (moved[1] - moved[0]).days == 2
    # Another key: other surrogates; the key is in no repr, config or serialization.
    other = keyed("Nota 1: Ana García López vive en Getafe. Alta el 12/03/2019.",
                   [("NOMBRE_SUJETO_ASISTENCIA", "Ana García López"), ("TERRITORIO", "Getafe"), ("FECHAS", "12/03/2019")],
                   key=bytes(range(32)))
    assert other != a


def test_the_key_stays_in_memory_and_reaches_worker_processes(tmp_path):
    import pickle

    nlp = ruler_pipeline("es", PATTERNS_ES, seed=7)
    transform = nlp.get_pipe("deid_transform")
    assert not transform.keyed
    unkeyed = nlp(NOTE_ES)._.deidentified
    transform.set_key(KEY)
    assert transform.keyed
    keyed = nlp(NOTE_ES)._.deidentified
    assert keyed != unkeyed
    hexkey = KEY.hex()
    for shown in (repr(transform), str(transform.__dict__), str(nlp.config), nlp.to_bytes().hex(), str(nlp.meta)):
        assert hexkey not in shown and KEY.hex().upper() not in shown and repr(KEY) not in shown
    nlp.to_disk(tmp_path / "m")
    assert not any(KEY in f.read_bytes() for f in (tmp_path / "m").rglob("*") if f.is_file())
    assert not spacy.load(tmp_path / "m").get_pipe("deid_transform").keyed
    # Pickled (spaCy's n_process > 1 under the spawn start method): the key goes along.
    copy = pickle.loads(pickle.dumps(transform))
    assert copy.keyed and copy(nlp.make_doc(NOTE_ES)) is not None
    transform.set_key(None)
    assert nlp(NOTE_ES)._.deidentified == unkeyed  # without a key: as before, from seed and text
    with pytest.raises(ValueError, match="too short") as err:
        transform.set_key(b"short")
    assert "short" not in str(err.value).replace("too short", "")


def test_load_key(tmp_path, monkeypatch):
    from clinical_deid.keys import load_key

    monkeypatch.delenv("DEID_SURROGATE_KEY", raising=False)
    assert load_key() is None
    (tmp_path / "hex").write_text(KEY.hex() + "\n")
    (tmp_path / "raw").write_bytes(KEY)
    assert load_key(tmp_path / "hex") == KEY == load_key(tmp_path / "raw")
    monkeypatch.setenv("DEID_SURROGATE_KEY", KEY.hex())
    assert load_key() == KEY
    (tmp_path / "short").write_text("abcd1234")
    for bad in ("short", "missing"):
        with pytest.raises(ValueError, match=bad) as err:
            load_key(tmp_path / bad)
        assert "abcd1234" not in str(err.value)
    monkeypatch.setenv("DEID_SURROGATE_KEY", "aaaaaaaaaaaaaaaaaaaaaaaaaa")
    with pytest.raises(ValueError, match="DEID_SURROGATE_KEY"):
        load_key()
