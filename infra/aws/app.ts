/**
 * The CDK app: `npx cdk synth --app "npx node infra/aws/app.ts"` (or `npx node infra/aws/app.ts` to write
 * cdk.out/). Context: `queues=pre-provisioned`, `instanceIds=app-0,app-1`, `queuePrefix`, `topicName`,
 * `sweeperImage`.
 */
import * as cdk from "aws-cdk-lib"
import { CacheStack } from "./CacheStack.ts"

const app = new cdk.App()
const context = (key: string): string | undefined => {
  const value: unknown = app.node.tryGetContext(key)
  return typeof value === "string" && value !== "" ? value : undefined
}
const queues = context("queues") === "pre-provisioned" ? "pre-provisioned" : "self-created"
export const stack = new CacheStack(app, "EmbeddedCache", {
  queues,
  instanceIds: context("instanceIds")?.split(","),
  queuePrefix: context("queuePrefix"),
  topicName: context("topicName"),
  sweeperImage: context("sweeperImage")
})
app.synth()
