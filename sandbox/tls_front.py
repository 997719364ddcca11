"""TLS in front of the local AWS, for `make bench`'s cold starts.

AWS's endpoints speak only HTTPS, so a function's first requests on Lambda
each begin with a TLS handshake, verified against the trust store. The bench
puts this front before the sandbox: it makes a root CA and a server
certificate for 127.0.0.1 and localhost (RSA 2048, as AWS's endpoints and
their Amazon roots are; the chain is sent, as AWS sends its intermediate),
writes the root alone (`root`: what a nightshift function is given in
`SSL_CERT_FILE`, beside the Mozilla roots built into it) and after a realistic
root store (`bundle`: the Mozilla roots certifi carries, as Lambda's own
bundle does, for a boto3 function's `AWS_CA_BUNDLE`), and relays each
connection's plaintext to the upstream.

    python3 sandbox/tls_front.py <upstream host:port> <directory>

prints one JSON line, {"port": ..., "root": ..., "bundle": ..., "roots": ...},
then serves until stdin closes.
"""

import datetime
import ipaddress
import json
import os
import socket
import ssl
import sys
import threading

import certifi
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


def _name(common):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "nightshift bench"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _certificate(subject, issuer, public_key, signing_key, ca, sans=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(subject).issuer_name(issuer).public_key(public_key)
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=1))
               .not_valid_after(now + datetime.timedelta(days=30))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                          encipher_only=False, decipher_only=False), critical=True)
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                                        critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def make_certificates(directory):
    """The root (appended to certifi's roots: the bundle) and the server's chain and key."""
    pem = serialization.Encoding.PEM
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    root = _certificate(_name("nightshift bench root"), _name("nightshift bench root"),
                        root_key.public_key(), root_key, ca=True)
    intermediate_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    intermediate = _certificate(_name("nightshift bench intermediate"), root.subject,
                                intermediate_key.public_key(), root_key, ca=True)
    server_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sans = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    server = _certificate(_name("localhost"), intermediate.subject, server_key.public_key(),
                          intermediate_key, ca=False, sans=sans)
    chain = os.path.join(directory, "server-chain.pem")
    with open(chain, "wb") as f:
        f.write(server.public_bytes(pem) + intermediate.public_bytes(pem))
    key = os.path.join(directory, "server-key.pem")
    with open(key, "wb") as f:
        f.write(server_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    root_file = os.path.join(directory, "root.pem")
    with open(root_file, "wb") as f:
        f.write(root.public_bytes(pem))
    with open(certifi.where(), "rb") as f:
        mozilla = f.read()
    bundle = os.path.join(directory, "roots.pem")
    with open(bundle, "wb") as f:
        f.write(mozilla.rstrip(b"\n") + b"\n" + root.public_bytes(pem))
    return chain, key, root_file, bundle, mozilla.count(b"-----BEGIN CERTIFICATE-----") + 1


def _pipe(source, sink):
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _relay(context, client, upstream):
    try:
        tls = context.wrap_socket(client, server_side=True)
        plain = socket.create_connection(upstream)
        plain.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tls.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, ssl.SSLError):
        client.close()
        return
    threading.Thread(target=_pipe, args=(plain, tls), daemon=True).start()
    _pipe(tls, plain)


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    chain, key, root, bundle, roots = make_certificates(sys.argv[2])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(chain, key)
    listener = socket.create_server(("127.0.0.1", 0))
    print(json.dumps({"port": listener.getsockname()[1], "root": root, "bundle": bundle, "roots": roots}),
          flush=True)

    def serve():
        while True:
            client, _ = listener.accept()
            threading.Thread(target=_relay, args=(context, client, (host, int(port))), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    sys.stdin.read()


if __name__ == "__main__":
    main()
