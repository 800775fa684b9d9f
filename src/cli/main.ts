#!/usr/bin/env node
/**
 * The `eddy` command. Argument parsing only: each subcommand hands its
 * validated options to the module that does the work.
 */
import { Command } from 'commander';
import { benchCommand } from './bench.js';
import { consumeCommand, publishCommand, requestCommand, topicsCommand } from './client-commands.js';
import { filtersCommand } from './filters-command.js';
import { replayCommand } from './replay-command.js';
import { routingCommand } from './routing-command.js';
import { transformsCommand } from './transforms-command.js';
import { dlqCommand } from './dlq-command.js';
import { serveCommand } from './serve.js';
import { subscriptionsCommand } from './subscriptions-command.js';

const program = new Command('eddy')
  .description('Eddy: a CloudEvents-native event broker')
  .showHelpAfterError()
  .configureOutput({ outputError: (message, write) => write(message.trim().split('\n')[0] + '\n') });

program.addCommand(serveCommand());
program.addCommand(publishCommand());
program.addCommand(consumeCommand());
program.addCommand(requestCommand());
program.addCommand(replayCommand());
program.addCommand(topicsCommand());
program.addCommand(subscriptionsCommand());
program.addCommand(filtersCommand());
program.addCommand(dlqCommand());
program.addCommand(routingCommand());
program.addCommand(transformsCommand());
program.addCommand(benchCommand());

await program.parseAsync(process.argv).catch((error: unknown) => {
  const message = error instanceof Error ? error.message : String(error);
  console.error(`eddy: ${message.split('\n')[0]}`);
  process.exitCode = 1;
});
