"""Named answer sets: every supported combination the template promises to render and validate.

The empty set is `--defaults`. Each set is rendered once per test session (tests/test_render.py).
"""

from pathlib import Path

import yaml

SUPPORTED = {
    "defaults": {},
    "minimal": {"environments": ["prod"], "server_size": "small", "tls_mode_prod": "self-signed"},
    "dev-only": {"environments": ["dev"]},
    "staging-only": {"environments": ["staging"]},
    "servers-only": {"environments": ["staging", "prod"]},
    "tls-self-signed": {"tls_mode_staging": "self-signed", "tls_mode_prod": "self-signed"},
    "tls-provided": {"tls_mode_staging": "provided", "tls_mode_prod": "provided", "tls_provided_dir": "/srv/tls"},
    "size-small": {"server_size": "small", "db_tls": "off"},
    "size-large": {"server_size": "large"},
    "size-custom": {"server_size": "custom", "host_cpus": 6, "host_memory_gb": 12, "backend_replicas": 3},
    "external-db": {"database": "external", "db_host": "db.internal.example.com", "db_port": 3307,
                    "db_tls": "verify-identity"},
    "external-redis": {"redis": "external", "redis_host": "cache.internal.example.com"},
    "en-docs": {"docs_language": "en"},
    "source-build-java21": {"backend_build": "source", "java_version": 21},
    "dockerhub-www": {
        "registry": "dockerhub",
        "registry_owner": "petoryteam",
        "extra_server_names": ["www.petory.example.com"],
        "domain": "petory.example.com",
    },
    "edge-modern-cors-lb": {
        "tls_profile": "modern",
        "hsts_preload": True,
        "cors_allowed_origins": ["https://partner.petory.example.com", "http://localhost:3000"],
        "trusted_proxies": ["10.0.0.0/8", "2001:db8::/32"],
        "api_rate_limit": 50,
        "api_body_size_mb": 50,
        "proxy_read_timeout_seconds": 300,
    },
    "letsencrypt-staging-ca": {
        "tls_mode_prod": "letsencrypt",
        "tls_mode_staging": "self-signed",
        "acme_server": "https://acme-staging-v02.api.letsencrypt.org/directory",
        "certbot_image": "registry.internal:5000/mirror/certbot:v4.0.0",
        "extra_server_names": ["www.petory.example.com"],
    },
    "deploy-repo": {"layout": "deploy-repo", "app_repository": "petory-team/petory", "frontend_build_dir": "frontend/dist"},
    "other-registry-mirror": {
        "registry": "other",
        "registry_host": "registry.internal:5000",
        "edge_nginx_image": "registry.internal:5000/mirror/nginx:1.28-alpine",
        "mysql_image": "registry.internal:5000/mirror/mysql:8.0",
    },
    # Every alert receiver: Alertmanager's Go templates (the webhook's text) and the URL left to env/prod.env.
    "monitoring-receivers": {"alert_webhook": True, "alert_email": "oncall@petory.example.com",
                             "alert_smtp_smarthost": "smtp.petory.example.com:587", "availability_target": 99.9},
}

# A set that answers an advanced question switches the group on, as an operator would: Copier
# records no answer that `when` hides, and the tests read the recorded answers back.
_ADVANCED = {name for name, spec in yaml.safe_load((Path(__file__).resolve().parent.parent / "copier.yml").read_text()).items()
             if isinstance(spec, dict) and "advanced" in str(spec.get("when", ""))}
for _answers in SUPPORTED.values():
    if _ADVANCED & set(_answers):
        _answers.setdefault("advanced", True)

# answers -> a fragment of the message the validator must give (non-interactive mode).
INVALID = {
    "domain-is-url": ({"domain": "https://petory.example.com"}, "a URL, not a host name"),
    "domain-not-fqdn": ({"domain": "petory"}, "not a full domain name"),
    "staging-equals-prod": ({"staging_domain": "petory.example.com"}, "same as the production domain"),
    "bad-email": ({"acme_email": "ops-at-petory"}, "not an e-mail address"),
    "bad-slug": ({"project_slug": "Petory App"}, "use 3-32 of a-z"),
    "no-environment": ({"environments": []}, "choose at least one"),
    "memory-too-small": ({"server_size": "custom", "host_cpus": 2, "host_memory_gb": 2}, "give 4 to 2048"),
    "replicas-do-not-fit": ({"server_size": "small", "backend_replicas": 3}, "needs 5.9 GB; at most 1 fit"),
    "bad-image": ({"edge_nginx_image": "Nginx:Latest!"}, "not an image reference"),
    "privileged-port": ({"backend_port": 80}, "give 1024 to 65535"),
    "same-ports": ({"frontend_port": 8080}, "taken by the backend port"),
    "bad-timezone": ({"timezone": "Mars/Olympus"}, "not an IANA zone"),
    "jar-outside-repo": ({"backend_jar_glob": "../other/app.jar"}, "must be relative"),
    "image-with-tag": ({"backend_image": "ghcr.io/petory-team/petory-backend:1.0"}, "a repository, without tag"),
    "extra-name-url": ({"extra_server_names": ["http://www.petory.example.com"]}, "#1: a URL"),
    "bad-db-name": ({"db_name": "1petory"}, "use [A-Za-z]"),
    "bad-owner": ({"registry_owner": "Petory Team"}, "use a-z, 0-9"),
    "bad-ssh-user": ({"prod_ssh_user": "Deploy User"}, "not a Unix user name"),
    "relative-deploy-dir": ({"prod_deploy_dir": "srv/petory"}, "must be an absolute path"),
    "cors-wildcard": ({"cors_allowed_origins": ["*"]}, "no wildcards"),
    "cors-origin-with-path": ({"cors_allowed_origins": ["https://partner.example.com/app"]}, "has a path"),
    "trust-everyone": ({"trusted_proxies": ["0.0.0.0/0"]}, "trusts every address"),
    "proxy-not-cidr": ({"trusted_proxies": ["lb.example.com"]}, "not a CIDR"),
    "body-size-zero": ({"api_body_size_mb": 0}, "give at least 1"),
    "timeout-too-short": ({"proxy_read_timeout_seconds": 1}, "give 5 to 3600"),
    "acme-over-http": ({"acme_server": "http://acme.example.com/dir"}, "https:// URL"),
}

# The invalid sets too: pytest-copie passes answers as defaults, and Copier validates no default of
# a hidden question.
for _answers, _ in INVALID.values():
    if _ADVANCED & set(_answers):
        _answers.setdefault("advanced", True)
