#!/usr/bin/env node
/**
 * The `embedded-cache` executable: parses the command line and runs it on the Node runtime, which turns
 * SIGTERM/SIGINT into interruption so every layer's finalizer (the embedded server's shutdown) runs.
 */
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Cause, Effect, Layer, Logger, Runtime } from "effect"
import { Command } from "effect/cli"
import * as Cli from "./Cli.ts"

Cli.command.pipe(
  Command.run({ version: "0.1.0" }),
  Effect.provide(Layer.mergeAll(NodeServices.layer, Logger.layer([Logger.consoleJson]))),
  // A service stopped by SIGTERM/SIGINT (interrupted, every finalizer run) has done its job: exit 0.
  NodeRuntime.runMain({
    teardown: (exit, onExit) =>
      exit._tag === "Failure" && Cause.hasInterruptsOnly(exit.cause) ? onExit(0) : Runtime.defaultTeardown(exit, onExit)
  })
)
