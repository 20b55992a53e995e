# DPoP refusal and success cases sent by requests-oauth2client (RFC 9449 section 4.3).
# Reads JWK (the private key as JSON), TOKEN, OTHER_TOKEN, URL_A, URL_B, URL_C, URL_N
# from the environment; prints one JSON object: case -> [status, WWW-Authenticate, extra].
import http.client
import json
import os
import time
import urllib.parse

import jwskate
import requests
from binapy import BinaPy
from requests_oauth2client import DPoPKey, DPoPToken

jwk = jwskate.Jwk(json.loads(os.environ["JWK"]))
token = os.environ["TOKEN"]
other = os.environ["OTHER_TOKEN"]
url_a, url_b, url_c, url_n = (os.environ[k] for k in ("URL_A", "URL_B", "URL_C", "URL_N"))
key = DPoPKey(private_key=jwk, alg="ES256")
out = {}


def ath(t):
    return BinaPy(t).to("sha256").to("b64u").decode()


def send(name, url, proof=None, scheme="DPoP", tok=token, method="GET"):
    headers = {"Authorization": f"{scheme} {tok}"}
    if proof is not None:
        headers["DPoP"] = str(proof)
    r = requests.request(method, url, headers=headers)
    out[name] = [r.status_code, r.headers.get("WWW-Authenticate"), r.headers.get("DPoP-Nonce")]
    return r


# The client's own flow: DPoPToken as a requests auth handler.
r = requests.get(url_a, auth=DPoPToken(access_token=token, _dpop_key=key))
out["client"] = [r.status_code, r.text, None]
r = requests.post(url_a + "?q=1#frag", auth=DPoPToken(access_token=token, _dpop_key=key))
out["client_post_query"] = [r.status_code, r.text, None]

send("wrong_htm", url_a, key.proof(htm="POST", htu=url_a, ath=ath(token)))
send("wrong_htu", url_a, key.proof(htm="GET", htu=url_a + "/other", ath=ath(token)))
old = DPoPKey(private_key=jwk, alg="ES256", iat_generator=lambda: int(time.time()) - 3600)
send("old_iat", url_a, old.proof(htm="GET", htu=url_a, ath=ath(token)))
future = DPoPKey(private_key=jwk, alg="ES256", iat_generator=lambda: int(time.time()) + 3600)
send("future_iat", url_a, future.proof(htm="GET", htu=url_a, ath=ath(token)))

replayed = key.proof(htm="GET", htu=url_a, ath=ath(token))
send("replay_first", url_a, replayed)
send("replay_same_replica", url_a, replayed)
# Replica B serves the same public URL (behind one load balancer) and shares Redis.
across = key.proof(htm="GET", htu=url_a, ath=ath(token))
send("across_first", url_a, across)
send("replay_other_replica", url_b, across)
# Replica C serves the same URL without the shared store: the replay goes unnoticed there.
send("replay_unshared_replica", url_c, across)
send("fresh_other_replica", url_b, key.proof(htm="GET", htu=url_a, ath=ath(token)))

send("wrong_ath", url_a, key.proof(htm="GET", htu=url_a, ath=ath(other)))
send("no_ath", url_a, key.proof(htm="GET", htu=url_a))
stranger = DPoPKey.generate(alg="ES256")
send("wrong_key", url_a, stranger.proof(htm="GET", htu=url_a, ath=ath(token)))

claims = {"jti": "private-1", "htm": "GET", "htu": url_a, "iat": int(time.time()), "ath": ath(token)}
private = jwskate.SignedJwt.sign(
    claims, key=jwk, alg="ES256", typ="dpop+jwt", extra_headers={"jwk": jwk.to_dict()}
)
send("private_jwk", url_a, private)
oct_key = jwskate.Jwk.generate(alg="HS256")
symmetric = jwskate.SignedJwt.sign(
    dict(claims, jti="sym-1"), key=oct_key, alg="HS256", typ="dpop+jwt",
    extra_headers={"jwk": oct_key.to_dict()},
)
send("symmetric_alg", url_a, symmetric)
wrong_typ = jwskate.SignedJwt.sign(
    dict(claims, jti="typ-1"), key=jwk, alg="ES256", typ="JWT",
    extra_headers={"jwk": jwk.public_jwk().to_dict()},
)
send("wrong_typ", url_a, wrong_typ)
send("bearer", url_a, None, scheme="Bearer")
send("no_proof", url_a, None)

# Two DPoP headers: requests folds a dict; http.client sends both lines.
u = urllib.parse.urlsplit(url_a)
conn = http.client.HTTPConnection(u.hostname, u.port)
conn.putrequest("GET", u.path)
conn.putheader("Authorization", f"DPoP {token}")
conn.putheader("DPoP", str(key.proof(htm="GET", htu=url_a, ath=ath(token))))
conn.putheader("DPoP", str(key.proof(htm="GET", htu=url_a, ath=ath(token))))
conn.endheaders()
resp = conn.getresponse()
out["two_proofs"] = [resp.status, resp.getheader("WWW-Authenticate"), None]

# Nonces: the first try is told to use one, the client retries with it and passes.
first = send("nonce_first", url_n, key.proof(htm="GET", htu=url_n, ath=ath(token)))
nonce_key = DPoPKey(private_key=jwk, alg="ES256")
r = requests.get(url_n, auth=DPoPToken(access_token=token, _dpop_key=nonce_key))
out["nonce_client"] = [r.status_code, r.text, nonce_key.rs_nonce]
send("nonce_forged", url_n, key.proof(htm="GET", htu=url_n, ath=ath(token), nonce="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"))

print(json.dumps(out))
