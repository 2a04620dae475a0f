#!/usr/bin/env node
/**
 * The `embedded-cache` executable: parses the command line and runs it on the Node runtime, which turns
 * SIGTERM/SIGINT into interruption so every layer's finalizer (the embedded server's shutdown) runs. Logs are JSON
 * lines: on stdout for `serve` (a service's output), on stderr for the one-shot commands, whose stdout carries their
 * result only.
 */
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Cause, Effect, Layer, Logger, Runtime } from "effect"
import { Command } from "effect/cli"
import * as Cli from "./Cli.ts"

const logger = process.argv[2] === "serve" ? Logger.consoleJson : Logger.withConsoleError(Logger.formatJson)

Cli.command.pipe(
  Command.run({ version: "0.1.0" }),
  Effect.provide(Layer.mergeAll(NodeServices.layer, Logger.layer([logger]))),
  // A service stopped by SIGTERM/SIGINT (interrupted, every finalizer run) has done its job: exit 0.
  NodeRuntime.runMain({
    teardown: (exit, onExit) =>
      exit._tag === "Failure" && Cause.hasInterruptsOnly(exit.cause) ? onExit(0) : Runtime.defaultTeardown(exit, onExit)
  })
)
