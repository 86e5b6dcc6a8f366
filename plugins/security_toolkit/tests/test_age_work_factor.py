"""A passphrase age file that rage refuses to open for its work factor: the user is told
what happened (the machine refused the work factor right now; try again when it is less
busy), never "wrong passphrase".

rage (through pyrage) measures anew for every file how long scrypt takes here and refuses
a file whose work factor would take over ~16 s; on a loaded machine it refused a log N 18
file it had made itself. The file here is a real age file made by pyrage whose scrypt
stanza names log N 30 instead (no machine opens that within 16 s, loaded or not): rage
refuses on reading the header, before any scrypt work, as it would for a file made with
that factor (pyrage has no way to choose the factor, and a true log N 30 file would take
hours to make).
"""

from __future__ import annotations

import re

import pyrage
import pytest
from security_toolkit import files
from security_toolkit.errors import Problem

from plexichat_desktop.plugins.api import PluginProblem

PASSPHRASE = "long enough phrase"


def with_work_factor(sealed: bytes, log_n: int) -> bytes:
    stanza = re.compile(rb"\n-> scrypt (\S+) \d+\n")
    assert stanza.search(sealed[:512]), "not a passphrase age file"
    return stanza.sub(lambda m: b"\n-> scrypt " + m.group(1) + b" %d\n" % log_n, sealed,
                      count=1)


@pytest.fixture(scope="module")
def sealed(rage_passphrase_file: tuple[str, bytes]) -> bytes:
    """A file rage made with its own work factor, which opens with PASSPHRASE (checked
    by the fixture)."""
    phrase, data = rage_passphrase_file
    assert phrase == PASSPHRASE
    return data


@pytest.fixture(scope="module")
def excessive(sealed: bytes) -> bytes:
    return with_work_factor(sealed, 30)


def test_rage_refuses_the_factor_itself(excessive):
    # What the toolkit maps: rage's own refusal, before the passphrase is tried.
    with pytest.raises(pyrage.DecryptError, match="Excessive work parameter"):
        pyrage.passphrase.decrypt(excessive, PASSPHRASE)


def test_a_refused_work_factor_is_not_a_wrong_passphrase(sealed, excessive, monkeypatch):
    assert files.work_factor(sealed) is not None and files.work_factor(excessive) == 30
    attempts = []
    real = pyrage.passphrase.decrypt
    monkeypatch.setattr(files, "WORK_RETRY_PAUSES", (0.01, 0.01))

    def counted(data: bytes, passphrase: str) -> bytes:
        attempts.append(passphrase)
        return real(data, passphrase)
    monkeypatch.setattr(pyrage.passphrase, "decrypt", counted)
    for passphrase in (PASSPHRASE, "not the phrase"):  # neither is tried
        with pytest.raises(Problem) as info:
            files.decrypt(excessive, passphrase=passphrase)
        problem = info.value
        assert isinstance(problem, PluginProblem) and problem.status == 503
        assert problem.field == "file" and problem.extra == {"work_factor": 30, "busy": True}
        text = str(problem)
        assert "wrong passphrase" not in text and "it may well be right" in text
        assert "scrypt log N 30" in text and "less busy" in text
        assert re.search(r"about \d+ s here", text)
    # Asked again after each pause (a busy moment passes), then told.
    assert len(attempts) == 2 * 3
    # The file with its own factor still opens (rage_passphrase_file opened it with the
    # same code); a wrong passphrase is still named so.
    with pytest.raises(Problem) as wrong:
        files.decrypt(sealed, passphrase="not the phrase")
    assert wrong.value.field == "passphrase" and "wrong passphrase" in str(wrong.value)


@pytest.mark.asyncio
async def test_the_page_gets_the_refusal_in_words(app, excessive, monkeypatch):
    # The retries and their count are the test above's; here the words the page gets.
    monkeypatch.setattr(files, "WORK_RETRY_PAUSES", (0.01, 0.01))
    async with app() as (client, _plugin, _server):
        answer = await client.post("files/decrypt", data={"passphrase": PASSPHRASE},
                                   files={"file": ("diary.txt.age", excessive)})
        assert answer.status_code == 503, answer.text
        body = answer.json()
        assert body["field"] == "file" and body["work_factor"] == 30 and body["busy"] is True
        assert body["detail"].startswith("file: this computer refused the file's passphrase "
                                         "work factor (scrypt log N 30)")
        assert "wrong passphrase" not in body["detail"]
