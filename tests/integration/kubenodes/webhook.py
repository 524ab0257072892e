"""Objects of a validating admission webhook served by a pod (labapp.py webhook): a CA and a
serving certificate for its Service name, the Secret, Deployment and Service, and the
ValidatingWebhookConfiguration (failurePolicy Fail) for ConfigMaps of one namespace."""

from __future__ import annotations

import base64
import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _pem_key(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def certificates(dns_name: str) -> tuple[bytes, bytes, bytes]:
    """(CA certificate, serving certificate, serving key), PEM."""
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    later = now + dt.timedelta(days=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lab webhook test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(later)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(later)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return ca.public_bytes(pem), cert.public_bytes(pem), _pem_key(key)


def webhook_objects(namespace: str, image: str) -> tuple[list[dict], dict]:
    """(namespaced objects, the cluster-scoped ValidatingWebhookConfiguration)."""
    ca, cert, key = certificates(f"webhook.{namespace}.svc")

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    docs = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "webhook-tls"},
            "type": "kubernetes.io/tls",
            "data": {"tls.crt": b64(cert), "tls.key": b64(key)},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "webhook"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "webhook"}},
                "template": {
                    "metadata": {"labels": {"app": "webhook"}},
                    "spec": {
                        "containers": [
                            {
                                "name": "webhook",
                                "image": image,
                                "args": ["webhook", "--cert", "/tls/tls.crt", "--key", "/tls/tls.key"],
                                "ports": [{"containerPort": 8443}],
                                "readinessProbe": {"tcpSocket": {"port": 8443}, "periodSeconds": 1},
                                "volumeMounts": [{"name": "tls", "mountPath": "/tls"}],
                            }
                        ],
                        "volumes": [{"name": "tls", "secret": {"secretName": "webhook-tls"}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "webhook"},
            "spec": {"selector": {"app": "webhook"}, "ports": [{"port": 443, "targetPort": 8443}]},
        },
    ]
    config = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": f"lab-{namespace}"},
        "webhooks": [
            {
                "name": "deny.meshops.lab",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Fail",
                "timeoutSeconds": 5,
                "clientConfig": {
                    "caBundle": b64(ca),
                    "service": {"namespace": namespace, "name": "webhook", "path": "/validate", "port": 443},
                },
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "rules": [
                    {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["configmaps"]}
                ],
            }
        ],
    }
    return docs, config
