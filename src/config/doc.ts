/** docs/configuration.md, rendered from the settings table (`npm run docs:config` writes it). */
import { GROUPS, SETTINGS, type Setting, type SettingGroup } from './settings';

/** Where the document lives, relative to the repository root. */
export const CONFIGURATION_DOC = 'docs/configuration.md';

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function row(name: string, setting: Setting): string {
  const variable = setting.file ? `\`${name}\`, \`${name}_FILE\`` : `\`${name}\``;
  const dflt = setting.default === undefined ? 'unset' : `\`${setting.default}\``;
  return `| ${variable} | ${dflt} | ${cell(setting.description)} |`;
}

/** The whole document, ending with a newline. */
export function renderConfigurationDoc(): string {
  const entries = Object.entries(SETTINGS) as [string, Setting][];
  const lines = [
    '# Configuration',
    '',
    '<!-- Generated from src/config/settings.ts by `npm run docs:config`: do not edit by hand. -->',
    '',
    'This document is generated from the settings table in `src/config/settings.ts` by',
    '`npm run docs:config`; `npm run docs:check` (run by CI and by `npm test`) fails when it is stale.',
    'To change a setting, edit the table and run `npm run docs:config`.',
    '',
    'keyward reads its settings from environment variables only, once at start. A bad value stops',
    '`keyward serve` with one line naming the variable (exit status 2). An empty value counts as unset,',
    'except for the host:port variables, where it is an error. A variable listed with its `_FILE` twin',
    'may instead be given as a file holding the value (e.g. a mounted Kubernetes Secret; surrounding',
    'whitespace is dropped): set one or the other, not both.',
  ];
  for (const [group, { title, intro }] of Object.entries(GROUPS) as [SettingGroup, (typeof GROUPS)[SettingGroup]][]) {
    lines.push('', `## ${title}`, '', intro, '', '| Variable | Default | Description |', '| --- | --- | --- |');
    for (const [name, setting] of entries) if (setting.group === group) lines.push(row(name, setting));
  }
  return lines.join('\n') + '\n';
}
