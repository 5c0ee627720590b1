"""Who may ask the server: the authenticator chain and the authorizer, as an aggregated
API server assembles them (k8s.io/apiserver's delegating options)."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

from cryptography import x509

from kubepulse import pki, tlsauth
from kubepulse.api.authn import (
    AuthConfigError,
    Authenticator,
    ChainAuthenticator,
    ClusterAuthentication,
    FrontProxyAuthenticator,
    RequestAuthenticator,
    RequestHeaderConfig,
    ReviewClient,
    TokenFileError,
    TokenReviewAuthenticator,
    load_tokens,
    read_cluster_authentication,
)
from kubepulse.kube.client import ApiError, Unreachable
from kubepulse.server import tlsoptions
from kubepulse.server.config import AuthOptions, ConfigError, ServingOptions

log = logging.getLogger("kubepulse.server")


def request_header_config(auth: AuthOptions) -> RequestHeaderConfig | None:
    """The front proxy from the --requestheader-* flags, or None without its CA."""
    path = auth.requestheader_client_ca_file
    if path is None:
        return None
    try:
        authorities = tlsauth.load_authorities(path.read_bytes())
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot load --requestheader-client-ca-file {path}: {err}") from err
    return RequestHeaderConfig(
        authorities,
        auth.requestheader_allowed_names,
        auth.requestheader_username_headers,
        auth.requestheader_group_headers,
        auth.requestheader_extra_headers_prefix,
    )


def _static_parts(
    auth: AuthOptions, client_authorities: list[x509.Certificate] | None = None
) -> Authenticator | None:
    """Static tokens and client certificates (--client-ca-file wins over the cluster's)."""
    try:
        tokens = load_tokens(auth.token_auth_file) if auth.token_auth_file is not None else None
    except TokenFileError as err:
        raise ConfigError(str(err)) from err
    if auth.client_ca_file is not None:
        try:
            client_authorities = tlsauth.load_authorities(auth.client_ca_file.read_bytes())
        except (OSError, ValueError) as err:
            raise ConfigError(f"cannot load client CA file {auth.client_ca_file}: {err}") from err
    if not tokens and not client_authorities:
        return None
    return Authenticator(tokens, client_authorities)


def authenticator(auth: AuthOptions) -> RequestAuthenticator:
    """Without a cluster: the front proxy, client certificates and static tokens."""
    front = request_header_config(auth)
    static = _static_parts(auth)
    chain: list[RequestAuthenticator] = [FrontProxyAuthenticator(front)] if front else []
    chain += [static] if static is not None else []
    if not chain:
        raise ConfigError(
            "no authentication configured: give --token-auth-file, --client-ca-file or "
            "--requestheader-client-ca-file"
        )
    return chain[0] if len(chain) == 1 else ChainAuthenticator(chain)


EXTENSION_AUTH_READER_HINT = (
    "; let the server's account read it (kubectl create rolebinding -n kube-system "
    "ROLEBINDING_NAME --role=extension-apiserver-authentication-reader "
    "--serviceaccount=YOUR_NS:YOUR_SA) or give --requestheader-client-ca-file and "
    "--client-ca-file"
)


async def cluster_authentication(
    auth: AuthOptions, reviews: ReviewClient
) -> ClusterAuthentication | None:
    """The ConfigMap, read when a CA flag is missing (upstream's lookup of missing config
    in DelegatingAuthenticationOptions), unless --authentication-skip-lookup. Failing to
    read it stops the server, as upstream does, unless
    --authentication-tolerate-lookup-failure: then the server goes on without it."""
    both = auth.requestheader_client_ca_file is not None and auth.client_ca_file is not None
    if both or auth.skip_lookup:
        return None
    try:
        return await _read_cluster_authentication(reviews)
    except ConfigError as err:
        if not auth.tolerate_lookup_failure:
            raise
        log.warning("%s; going on without it (--authentication-tolerate-lookup-failure)", err)
        return None


async def _read_cluster_authentication(reviews: ReviewClient) -> ClusterAuthentication | None:
    try:
        return await read_cluster_authentication(reviews)
    except ApiError as err:
        raise ConfigError(
            "cannot read configmap kube-system/extension-apiserver-authentication: "
            f"{err.code} {err.reason}: {err.message}{EXTENSION_AUTH_READER_HINT}"
        ) from err
    except Unreachable as err:
        raise ConfigError(f"cannot reach the Kubernetes API: {err}") from err
    except AuthConfigError as err:
        raise ConfigError(str(err)) from err


async def cluster_authenticator(auth: AuthOptions, reviews: ReviewClient) -> ChainAuthenticator:
    """The front proxy, client certificates, static tokens, then TokenReview: the order
    of the apiserver's delegating authenticator (front proxy, x509, tokens)."""
    found = await cluster_authentication(auth, reviews)
    front = request_header_config(auth) or (found.request_header if found else None)
    static = _static_parts(auth, found.client_authorities if found else None)
    chain: list[RequestAuthenticator] = [FrontProxyAuthenticator(front)] if front else []
    chain += [static] if static is not None else []
    chain.append(TokenReviewAuthenticator(reviews, auth.token_webhook_cache_ttl))
    return ChainAuthenticator(chain)


def serving_context(serving: ServingOptions, auth: RequestAuthenticator) -> ssl.SSLContext:
    """The TLS context of the API: --tls-cert-file, else a self-signed certificate made
    in --cert-dir, as metrics-server makes one; client certificates asked for when the
    authenticator takes them, and only those the CAs of its chain verify let through the
    handshake (see kubepulse.tlsauth). With --tls-sni-cert-key, a context per pair, chosen
    by the name the client asks for (tlsoptions.chooser)."""
    if serving.tls_cert_file is not None and serving.tls_private_key_file is not None:
        cert, key = serving.tls_cert_file, serving.tls_private_key_file
    else:
        try:
            ca = pki.ensure_ca(serving.cert_dir, "kubepulse-server-ca")
            cert, key = pki.ensure_serving(
                serving.cert_dir, "apiserver", ca, "kubepulse", serving.bind_address
            )
        except OSError as err:
            raise ConfigError(f"cannot write certificates to {serving.cert_dir}: {err}") from err
    ctx = _context(serving, auth, cert, key)
    pairs = serving.tls_sni_cert_keys
    if pairs:
        contexts = [_context(serving, auth, p.cert_file, p.key_file) for p in pairs]
        try:
            names = tlsoptions.name_map(pairs, contexts)
        except (OSError, ValueError) as err:
            raise ConfigError(f"cannot read --tls-sni-cert-key certificate: {err}") from err
        ctx.sni_callback = tlsoptions.chooser(names)
    return ctx


def _context(
    serving: ServingOptions, auth: RequestAuthenticator, cert: Path, key: Path
) -> ssl.SSLContext:
    # A server context: no system CAs are loaded, so only the authenticators' CAs below
    # can verify a client certificate.
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        tlsoptions.restrict(
            ctx, tlsoptions.min_version(serving.tls_min_version), serving.tls_cipher_suites
        )
    except tlsoptions.TLSOptionError as err:
        raise ConfigError(str(err)) from err
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as err:
        raise ConfigError(f"cannot load serving certificate {cert}: {err}") from err
    if auth.wants_client_certificates:
        authorities = auth.client_authorities_for_tls
        if not authorities:
            raise ConfigError("client certificates are asked for, but no client CA is known")
        try:
            tlsauth.request_client_certificates(ctx, authorities)
        except (ValueError, ssl.SSLError) as err:
            raise ConfigError(f"cannot use the client CAs: {err}") from err
    return ctx
