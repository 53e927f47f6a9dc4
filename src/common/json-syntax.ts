import { printParseErrorCode, visit } from 'jsonc-parser';

export type JsonProblem =
  | { kind: 'syntax'; reason: string; line: number; column: number }
  | { kind: 'duplicate-key'; key: string; line: number; column: number };

const printableKey = /^[A-Za-z0-9_-]{1,40}$/;

// Finds where strict JSON breaks, or a key given twice (JSON.parse keeps the last silently; codex's
// serde refuses the file), with positions only, so the file's content is never quoted.
export function findJsonProblem(text: string): JsonProblem | undefined {
  let problem: JsonProblem | undefined;
  const openObjects: Set<string>[] = [];
  visit(
    text,
    {
      onObjectBegin: () => void openObjects.push(new Set()),
      onObjectEnd: () => void openObjects.pop(),
      onObjectProperty: (property, _offset, _length, line, column) => {
        const keys = openObjects.at(-1);
        if (problem || !keys) return;
        if (keys.has(property)) {
          problem = {
            kind: 'duplicate-key',
            key: printableKey.test(property) ? property : '(unprintable)',
            line: line + 1,
            column: column + 1,
          };
        }
        keys.add(property);
      },
      onError: (error, _offset, _length, line, column) => {
        problem ??= {
          kind: 'syntax',
          reason: printParseErrorCode(error),
          line: line + 1,
          column: column + 1,
        };
      },
    },
    { disallowComments: true, allowTrailingComma: false, allowEmptyContent: false },
  );
  return problem;
}
