import json
import os
import stat

import pytest

from aiaudit.pipeline.errors import SigningKeyError
from aiaudit.pipeline.keys import (
    Ed25519Signer,
    KeyRing,
    active_key_file,
    generate_key,
    load_signer,
    read_jwks,
    thumbprint,
)


def test_rfc8037_thumbprint_example():
    # RFC 8037 Appendix A.3: the RFC 7638 thumbprint of the example Ed25519 public key.
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
    assert thumbprint(jwk) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def test_generate_writes_0600_key_and_keeps_old_public_keys(tmp_path):
    keys = tmp_path / "keys"
    path1, kid1 = generate_key(keys)
    path2, kid2 = generate_key(keys)
    assert stat.S_IMODE(path1.stat().st_mode) == 0o600
    assert kid1 != kid2
    jwks = read_jwks(keys)
    assert [k["kid"] for k in jwks["keys"]] == [kid1, kid2]  # rotation never drops the old key
    assert all(k["kty"] == "OKP" and k["crv"] == "Ed25519" for k in jwks["keys"])
    assert load_signer(path2).kid == kid2
    os.utime(path1, ns=(1, 1))
    assert active_key_file(keys, None) == path2


def test_key_readable_by_others_is_refused(tmp_path):
    path, _ = generate_key(tmp_path)
    path.chmod(0o644)
    with pytest.raises(SigningKeyError, match="readable or writable by others.*chmod 600"):
        load_signer(path)


def test_a_keys_folder_writable_by_others_is_refused_with_the_fix(tmp_path):
    keys = tmp_path / "keys"
    path, _ = generate_key(keys)
    keys.chmod(0o770)  # a group member could swap the key or the JWKS
    with pytest.raises(SigningKeyError, match=f"writable by others.*chmod go-w {keys}"):
        load_signer(path)
    keys.chmod(0o700)
    assert load_signer(path).kid


def test_a_key_behind_a_symbolic_link_is_refused(tmp_path):
    path, _ = generate_key(tmp_path / "keys")
    link = tmp_path / "keys" / "link.key"
    link.symlink_to(path)
    with pytest.raises(SigningKeyError, match="not a symbolic link"):
        load_signer(link)


def test_missing_key_says_what_to_do(tmp_path):
    with pytest.raises(SigningKeyError, match="aiaudit keys generate"):
        active_key_file(tmp_path / "none", None)


def test_keyring_rejects_a_kid_that_is_not_the_thumbprint():
    jwk = Ed25519Signer.generate().jwk()
    jwk["kid"] = "made-up"
    with pytest.raises(SigningKeyError, match="thumbprint"):
        KeyRing.from_jwks({"keys": [jwk]})


def test_keyring_verifies_only_the_right_key():
    a, b = Ed25519Signer.generate(), Ed25519Signer.generate()
    ring = KeyRing.from_jwks(json.loads(json.dumps({"keys": [a.jwk(), b.jwk()]})))
    sig = a.sign(b"m")
    assert ring.verify(a.kid, sig, b"m")
    assert not ring.verify(b.kid, sig, b"m")
    assert not ring.verify(a.kid, sig, b"n")


def test_keyring_verify_agrees_with_openssl_and_refuses_altered_signatures():
    """Records are signed with OpenSSL (cryptography) and verified with libsodium (PyNaCl): for
    honest signatures they agree; a flipped bit, a wrong length, or S + L (the classic
    malleation, valid under a lax verifier) are refused."""
    import os
    import pickle

    from aiaudit.pipeline.keys import Ed25519Signer, KeyRing

    signer = Ed25519Signer.generate()
    ring = KeyRing.from_jwks({"keys": [signer.jwk()]})
    order = 2**252 + 27742317777372353535851937790883648493
    for i in range(200):
        msg = os.urandom(i * 7)
        sig = signer.sign(msg)
        signer.private_key.public_key().verify(sig, msg)  # OpenSSL accepts it
        assert ring.verify(signer.kid, sig, msg)
        flipped = bytearray(sig)
        flipped[i % 64] ^= 1 << (i % 8)
        assert not ring.verify(signer.kid, bytes(flipped), msg)
        s = int.from_bytes(sig[32:], "little") + order
        if s < 2**256:
            assert not ring.verify(signer.kid, sig[:32] + s.to_bytes(32, "little"), msg)
    assert not ring.verify(signer.kid, sig[:63], msg) and not ring.verify(signer.kid, sig + b"\x00", msg)
    again = pickle.loads(pickle.dumps(ring))  # verification workers get the ring pickled
    assert again.verify(signer.kid, sig, msg) and signer.kid in again and len(again) == 1


def test_no_new_key_has_a_kid_a_command_line_takes_for_an_option():
    from aiaudit.pipeline.keys import Ed25519Signer

    kids = [Ed25519Signer.generate().kid for _ in range(640)]  # about ten would start with '-' by chance
    assert not [k for k in kids if k.startswith("-")]
    assert len({k[0] for k in kids}) > 40  # the first character is still drawn from the whole alphabet


def test_libsodium_signatures_are_openssls_bytes():
    # The signer signs with libsodium when PyNaCl is installed: Ed25519 is deterministic, so every
    # signature must be exactly the one OpenSSL gives for the same key and message (RFC 8032).
    signer = Ed25519Signer.generate()
    assert signer._sodium_secret is not None
    for size in (0, 1, 64, 1200, 70_000):
        message = os.urandom(size)
        assert signer.sign(message) == signer.private_key.sign(message)
        signer.private_key.public_key().verify(signer.sign(message), message)  # raises when not valid
