import { announcement, parseChanges, PROCESS_ID } from '../src/store/change-listener';
import { newId } from '../src/util/ids';

describe('change announcements', () => {
  const key = newId('key', 1);
  const org = newId('org', 1);

  it('carry ids only, and a process ignores its own', () => {
    const text = announcement([
      { type: 'key', id: key },
      { type: 'org', id: org },
    ]);
    expect(JSON.parse(text)).toEqual({
      from: PROCESS_ID,
      changes: [
        { type: 'key', id: key },
        { type: 'org', id: org },
      ],
    });
    expect(parseChanges(text)).toEqual([]);
    expect(parseChanges(text, 'another-process')).toEqual([
      { type: 'key', id: key },
      { type: 'org', id: org },
    ]);
  });

  it.each([undefined, '', 'not json', '[]', '{"from":"x"}', '{"from":"x","changes":{}}'])('ignores a malformed payload %p', (p) => {
    expect(parseChanges(p, 'me')).toEqual([]);
  });

  it('drops entries that are not well-formed changes', () => {
    const p = JSON.stringify({
      from: 'x',
      changes: [{ type: 'key', id: org }, { type: 'user', id: key }, { type: 'key', id: 'key_x' }, { type: 'org', id: org }, null, 5],
    });
    expect(parseChanges(p, 'me')).toEqual([{ type: 'org', id: org }]);
  });
});
