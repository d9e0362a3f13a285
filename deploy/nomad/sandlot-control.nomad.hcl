# sandlotd control: the stateless control plane and router, two allocations on different
# hosts. Nomad's counterpart of the Kubernetes Deployment. Read README.md first; nothing here
# has been run (there is no Nomad to run it on).
#
#   nomad job run -var public_url=https://sandlot.example.com deploy/nomad/sandlot-control.nomad.hcl
#
# Secrets come from the Nomad Variable nomad/jobs/sandlot-control (items api_key, join_token,
# database_url, token_private_key), which only this job can read.

variable "public_url" {
  type        = string
  description = "The URL clients use: the load balancer in front of the control allocations."
}

job "sandlot-control" {
  type = "service"
  # Not the sandbox pool: the control plane holds the private key and the database URL, and
  # must never share a kernel with untrusted code.
  node_pool = "default"

  group "control" {
    count = 2

    # One allocation per host: losing a host must not take the whole control plane with it.
    constraint {
      operator = "distinct_hosts"
      value    = "true"
    }

    network {
      # Static, so the load balancer can point at <host>:7070 on each control host.
      port "http" {
        static = 7070
      }
    }

    # Replace one allocation at a time, and only once the new one passes its health check.
    update {
      max_parallel     = 1
      health_check     = "checks"
      min_healthy_time = "10s"
      healthy_deadline = "3m"
      auto_revert      = true
    }

    service {
      provider = "nomad"
      name     = "sandlot-control"
      port     = "http"
      check {
        type     = "http"
        path     = "/health"
        interval = "5s"
        timeout  = "2s"
      }
    }

    task "sandlotd" {
      # exec: a chroot, its own pid and mount namespaces, a task cgroup, as an unprivileged
      # user with every capability dropped. The control plane runs no sandboxes, so it needs
      # none of the host access the node agent has.
      driver = "exec"
      user   = "nobody"

      config {
        command  = "/usr/local/bin/sandlotd"
        args     = ["control"]
        cap_drop = ["all"]
      }

      env {
        SANDLOT_LISTEN                 = "${NOMAD_ADDR_http}"
        SANDLOT_PUBLIC_URL             = var.public_url
        SANDLOT_TOKEN_PRIVATE_KEY_FILE = "${NOMAD_SECRETS_DIR}/token-private.key"
      }

      # Written unquoted into an env file: keep `#` and newlines out of these values.
      template {
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/sandlot-control" -}}
          SANDLOT_API_KEY={{ .api_key }}
          SANDLOT_JOIN_TOKEN={{ .join_token }}
          SANDLOT_DATABASE_URL={{ .database_url }}
          {{ end -}}
        EOT
        destination = "secrets/control.env"
        env         = true
        change_mode = "restart"
      }

      # The Ed25519 key that signs sandbox tokens and control-to-node calls. Owned by the task
      # user (65534 is nobody on Debian; match your hosts) and readable by it alone.
      template {
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/sandlot-control" }}{{ .token_private_key }}{{ end }}
        EOT
        destination = "secrets/token-private.key"
        perms       = "0400"
        uid         = 65534
        gid         = 65534
        change_mode = "restart"
      }

      # Open streams get this long to finish; clients reconnect to the other allocation.
      kill_timeout = "30s"

      resources {
        cpu    = 250
        memory = 256
      }
    }
  }
}
