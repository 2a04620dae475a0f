/**
 * The `embedded-cache` command line on `effect/cli`. `serve` runs the instance's cache sidecar (layers/Service.ts)
 * until SIGTERM/SIGINT, when it drains and shuts its embedded redis-server down; `sweep-queues` removes the SQS
 * queues of instances that died. Configuration comes from the environment (see `src/CacheConfig.ts`).
 */
import { Console, Effect, Layer, Option } from "effect"
import { Command, Flag } from "effect/cli"
import * as Service from "./Service.ts"
import * as SnsSqsBus from "./SnsSqsBus.ts"

const sweepQueues = Command.make(
  "sweep-queues",
  {
    prefix: Flag.String("prefix").pipe(
      Flag.withDescription("queue name prefix of the instances' queues"),
      Flag.withDefault(SnsSqsBus.defaultQueuePrefix)
    ),
    olderThan: Flag.Int("older-than-minutes").pipe(
      Flag.withDescription("a queue whose heartbeat is older than this is an orphan"),
      Flag.withDefault(30)
    ),
    topicArn: Flag.String("topic-arn").pipe(Flag.withDescription("unsubscribe orphans from this topic"), Flag.optional)
  },
  Effect.fnUntraced(function* ({ prefix, olderThan, topicArn }) {
    const swept = yield* SnsSqsBus.sweepOrphanQueues({
      prefix,
      olderThan: `${olderThan} minutes`,
      topicArn: Option.getOrUndefined(topicArn)
    })
    yield* Console.log(JSON.stringify({ swept: swept.map((queue) => queue.queueUrl) }))
  })
).pipe(Command.withDescription("Delete the SQS queues (and subscriptions, DLQs) of instances that died"))

const serve = Command.make("serve", {}, () => Layer.launch(Service.layer)).pipe(
  Command.withDescription("Run the cache sidecar (REST API, embedded Redis, sync) until SIGTERM or SIGINT")
)

/** The root command with its subcommands. */
export const command = Command.make("embedded-cache").pipe(
  Command.withDescription("Embedded local Redis cache for this application instance"),
  Command.withSubcommands([serve, sweepQueues])
)
