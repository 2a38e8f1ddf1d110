/** Prints a generated admin token to the terminal (stderr), never to the structured log. */
export function printGeneratedAdminToken(token: string): void {
  process.stderr.write(
    [
      '',
      '================================================================================',
      ' keyward generated an administrator token. It is shown only this once:',
      '',
      `   ${token}`,
      '',
      ' Use it as KEYWARD_ADMIN_TOKEN for the CLI. Only its keyed hash is stored;',
      ' set KEYWARD_ADMIN_TOKEN when starting keyward to choose your own instead.',
      '================================================================================',
      '',
    ].join('\n') + '\n',
  );
}
