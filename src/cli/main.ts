#!/usr/bin/env node
/**
 * The `eddy` command. Argument parsing only: each subcommand hands its
 * validated options to the module that does the work.
 */
import { Command, Option } from 'commander';
import { positiveInteger } from './arguments.js';
import { benchCommand } from './bench.js';

const program = new Command('eddy')
  .description('Eddy: a CloudEvents-native event broker')
  .showHelpAfterError()
  .configureOutput({ outputError: (message, write) => write(message.trim().split('\n')[0] + '\n') });

program
  .command('serve')
  .description('run a broker node')
  .addOption(
    new Option('--port <n>', 'port for WebSocket, HTTP API and metrics')
      .argParser(positiveInteger)
      .default(7070),
  )
  .addOption(new Option('--data <dir>', 'data directory').default('./eddy-data'))
  .addOption(new Option('--config <file>', 'config file (YAML or JSON)'))
  .action(() => {
    console.error('eddy serve: the broker server is not built yet (it arrives with issue #3)');
    process.exitCode = 1;
  });

program.addCommand(benchCommand());

await program.parseAsync(process.argv).catch((error: unknown) => {
  console.error(`eddy: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});
