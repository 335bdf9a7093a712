/**
 * @hutch/sdk: TypeScript client of the hutch session server.
 *
 *     import { Session } from "@hutch/sdk";
 *     const s = await Session.create();            // HUTCH_URL, HUTCH_TOKEN
 *     console.log((await s.commands.run("echo hi")).stdout);
 *     await s.delete();
 *
 * See docs/sdk.md.
 */
export * from "./errors.js";
export * from "./session.js";
export * from "./client.js";
export * from "./pty.js";
export type { ConnectionOptions } from "./transport.js";
export type { components, paths } from "./schema.js";
