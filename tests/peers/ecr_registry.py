"""A real container registry standing in for ECR's registry endpoint, for tests/tests/deploy.rs.

moto emulates ECR's API (repositories, images, GetAuthorizationToken) but not the registry that
`docker push` / `buildah push` talk to. This sets up Debian's `docker-registry` (the CNCF
distribution registry, what ECR speaks) so that a push to the name moto hands out works:

  ecr_registry.py MOTO_ENDPOINT REGION DIR

- asks moto (GetAuthorizationToken, through boto3) for the registry's host name and the
  user/password it issues, and lets exactly that login in (htpasswd, bcrypt): a push without
  the script's login is refused, as ECR refuses it;
- makes a self-signed certificate for that host name (openssl), and writes DIR/hosts (this
  machine's /etc/hosts plus the host name on 127.0.0.1) for the caller to bind-mount over
  /etc/hosts in a private mount namespace, and DIR/cert.pem for SSL_CERT_FILE;
- prints one JSON line {"host", "hosts", "cert", "storage"} and then becomes the registry
  (exec), listening on 127.0.0.1:443: the host name ECR hands out has no port, so HTTPS's port
  is the one a client uses. Run it only inside the loopback-only network namespace (nothing
  else there binds 443; port-0 binds take ephemeral ports, never 443).
"""

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import bcrypt
import boto3


def main():
    endpoint, region, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    registry = shutil.which("docker-registry")
    if not registry:
        sys.exit("ecr_registry.py: docker-registry is not installed (apt-get install docker-registry)")
    out.mkdir(parents=True, exist_ok=True)
    ecr = boto3.client("ecr", region_name=region, endpoint_url=endpoint)
    auth = ecr.get_authorization_token()["authorizationData"][0]
    user, _, password = base64.b64decode(auth["authorizationToken"]).decode().partition(":")
    host = auth["proxyEndpoint"].removeprefix("https://")

    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=6)).decode()
    (out / "htpasswd").write_text(f"{user}:{hashed}\n")
    subprocess.run(
        ["openssl", "req", "-x509", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-keyout", str(out / "key.pem"), "-out", str(out / "cert.pem"), "-days", "2",
         "-subj", f"/CN={host}", "-addext", f"subjectAltName=DNS:{host}"],
        check=True, capture_output=True, timeout=30,
    )
    (out / "hosts").write_text(Path("/etc/hosts").read_text() + f"\n127.0.0.1 {host}\n")
    storage = out / "storage"
    (out / "config.yml").write_text(
        f"""version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: {storage}
auth:
  htpasswd:
    realm: ecr-stand-in
    path: {out / 'htpasswd'}
http:
  addr: 127.0.0.1:443
  tls:
    certificate: {out / 'cert.pem'}
    key: {out / 'key.pem'}
"""
    )
    print(json.dumps({"host": host, "hosts": str(out / "hosts"), "cert": str(out / "cert.pem"),
                      "storage": str(storage)}), flush=True)
    os.execv(registry, [registry, "serve", str(out / "config.yml")])


if __name__ == "__main__":
    main()
