# asgard-stats on Nomad: a periodic batch job, every minute, whose group runs one allocation
# per shard; allocation I (NOMAD_ALLOC_INDEX, 0-based) runs shard I of `shards`.
#   nomad var put nomad/jobs/asgard-stats rabbitmq_password=- redis_url=-   # typed, never here
#   nomad job run -var shards=4 asgard-stats.nomad.hcl
# The image is scripts/package's target/oci/asgard-stats.tar, loaded and pushed to your
# registry. Settings are plain variables below; secrets come from Nomad Variables as files
# in the task's secrets/ folder, read through the *_FILE settings.
#
# Exit codes: Nomad counts any non-zero exit as a failed allocation: a partial pass (3) and
# one that found the lock held (75) show as failed, and the Pushgateway metrics tell which.
# Nothing is restarted or rescheduled: the next minute's run catches up, and a retry would
# only collide with it.

variable "shards" {
  type    = number
  default = 4
}

job "asgard-stats" {
  type        = "batch"
  datacenters = ["*"]

  periodic {
    crons            = ["* * * * *"]
    time_zone        = "UTC"
    prohibit_overlap = true
  }

  group "shards" {
    count = var.shards

    restart {
      attempts = 0
      mode     = "fail"
    }

    reschedule {
      attempts  = 0
      unlimited = false
    }

    task "collect" {
      driver = "docker"

      config {
        image = "registry.example/asgard-stats:0.1.0"
        args  = ["collect"]
      }

      # SIGTERM, then up to 5 s for the agents in flight and the lock: 10 s before SIGKILL
      # (Nomad's default is 5 s).
      kill_signal  = "SIGTERM"
      kill_timeout = "10s"

      env {
        STATS_COLLECTOR_SHARD_INDEX = "${NOMAD_ALLOC_INDEX}"
        STATS_COLLECTOR_SHARD_COUNT = "${var.shards}"

        HOLLOWMAN_MESOS_ADDRESS       = "http://mesos-master-1.example:5050"
        HOLLOWMAN_MESOS_ADDRESS_0     = "http://mesos-master-2.example:5050"
        STATS_COLLECTOR_RABBITMQ_HOST = "rabbitmq.example:5672"
        STATS_COLLECTOR_RABBITMQ_USER = "asgard"
        STATS_COLLECTOR_RABBITMQ_RK   = "asgard.app.stats"
        STATS_COLLECTOR_PUSHGATEWAY   = "http://pushgateway.example:9091"
        STATS_COLLECTOR_LOG_FORMAT    = "json"
        # Agent answers held at once: 64 MiB keeps the worst case (agents streaming huge
        # answers: 71 MiB peak measured, BENCHMARKS.md) inside memory_max below, as the
        # Kubernetes and Metronome jobs do; the default 256 MiB would not fit.
        STATS_COLLECTOR_BODY_BUDGET_BYTES = "67108864"
        # A partial pass exits 0 so Nomad does not count it as a failed allocation; its
        # summary, logs and pushed metrics still say exit 3.
        STATS_COLLECTOR_PARTIAL_EXIT_CODE = "0"

        STATS_COLLECTOR_RABBITMQ_PWD_FILE = "${NOMAD_SECRETS_DIR}/rabbitmq-password"
        STATS_COLLECTOR_REDIS_URL_FILE    = "${NOMAD_SECRETS_DIR}/redis-url"
      }

      template {
        data        = "{{ with nomadVar \"nomad/jobs/asgard-stats\" }}{{ .rabbitmq_password }}{{ end }}"
        destination = "secrets/rabbitmq-password"
        perms       = "0400"
        uid         = 65534
        gid         = 65534
      }

      template {
        data        = "{{ with nomadVar \"nomad/jobs/asgard-stats\" }}{{ .redis_url }}{{ end }}"
        destination = "secrets/redis-url"
        perms       = "0400"
        uid         = 65534
        gid         = 65534
      }

      # BENCHMARKS.md: a pass over 50,000 tasks takes 0.47 s of CPU and peaks at 18 MiB.
      resources {
        cpu        = 250
        memory     = 64
        memory_max = 128
      }
    }
  }
}
