"""A restart keeps everything: CA, token key, objects, enforcers, app credentials, reports."""
import json

from console_harness import Console, register


def test_restart_keeps_all_data(tmp_path, policy_dir):
    c = Console(tmp_path, policy_dir=policy_dir).start()
    cred = c.appcred("keeper", "admin")
    f = cred["files"]
    status, _, body = c.request("POST", "/issue", {"realm": "Certificate", "validity": "1h"},
                                cert=f["certificate"], key=f["certificateKey"])
    assert status == 200
    token = body["token"]
    enf_token = c.enforcer_token("enf-r", validity="1h")
    assert register(c, enf_token, "enf-r", ["role=appliance", "site=dc1"])[0] == 201
    pu = {"ID": "pu-api", "name": "api", "associatedTags": ["app=shop", "tier=api"],
          "addresses": ["10.7.0.0/24"]}
    assert c.request("POST", "/processingunits", pu, token=token)[0] == 201
    net = {"name": "dns", "entries": ["192.0.2.99"], "associatedTags": ["net=dns"]}
    nets = c.request("GET", "/externalnetworks", token=token)[2]
    dns_id = next(n["ID"] for n in nets if n["name"] == "dns")
    assert c.request("PUT", f"/externalnetworks/{dns_id}", net, token=token)[0] == 200
    batch = {"batchID": "b1", "enforcerID": "enf-r", "reports": [
        {"sourceID": "pu-api", "destinationIP": "192.0.2.99", "destinationPort": 53,
         "action": "Accept", "value": 7}]}
    assert c.request("POST", "/flowreports", batch, token=enf_token)[0] == 201
    _, headers, bundle = c.request("GET", "/enforcers/enf-r/policy", token=token)
    ca_before = c.ca_path.read_text()
    assert c.stop() == 0  # SIGTERM: clean exit

    c2 = Console(tmp_path, policy_dir=policy_dir).start()
    try:
        assert c2.ca_path.read_text() == ca_before
        # The token from before the restart still verifies (same token key).
        status, _, got = c2.request("GET", "/processingunits/pu-api", token=token)
        assert status == 200 and got["addresses"] == ["10.7.0.0/24"]
        nets = c2.request("GET", "/externalnetworks", token=token)[2]
        assert next(n for n in nets if n["name"] == "dns")["entries"] == ["192.0.2.99"]
        status, headers2, bundle2 = c2.request("GET", "/enforcers/enf-r/policy", token=token)
        assert status == 200
        # Nothing changed, so the same version (and ETag) — an enforcer does not refetch.
        assert headers2["ETag"] == headers["ETag"]
        assert json.dumps(bundle2, sort_keys=True) == json.dumps(bundle, sort_keys=True)
        assert c2.request("POST", "/flowreports", batch, token=enf_token)[2]["duplicate"] is True
        assert len(c2.request("GET", "/flowreports", token=token)[2]) == 1
        # The app credential still works for a fresh token.
        status, _, _ = c2.request("POST", "/issue", {"realm": "Certificate"},
                                  cert=f["certificate"], key=f["certificateKey"])
        assert status == 200
        status, _, enf = c2.request("GET", "/enforcers/enf-r", token=token)
        assert status == 200 and enf["associatedTags"] == ["role=appliance", "site=dc1"]
    finally:
        c2.stop()
