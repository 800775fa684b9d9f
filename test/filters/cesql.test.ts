import { describe, expect, it } from 'vitest';
import {
  CesqlError,
  CesqlMathError,
  CesqlMissingAttributeError,
  CesqlMissingFunctionError,
  CesqlParseError,
  compile,
  maxExpressionDepth,
  type AttributeReader,
  type CesqlErrorKind,
} from '../../src/filters/cesql.js';

const event = { specversion: '1.0', id: 'e-1', source: 'https://example.com', type: 'x', subject: 'abc' };

function evaluate(expression: string, attributes: Record<string, unknown> = event) {
  const { value, errors } = compile(expression).evaluate(attributes);
  return { value, kinds: errors.map((error) => error.kind) };
}

function compileError(expression: string): CesqlError {
  try {
    compile(expression);
  } catch (error) {
    if (error instanceof CesqlError) return error;
    throw error;
  }
  throw new Error(`${expression} compiled`);
}

describe('filters > cesql > parse', () => {
  it('reports the column of an unexpected token', () => {
    const error = compileError("type = = 'x'");
    expect(error).toBeInstanceOf(CesqlParseError);
    expect(error.span).toMatchObject({ line: 1, column: 8, offset: 7, length: 1 });
    expect(error.message).toContain("found '='");
  });

  it('reports the line and column of an error on a later line', () => {
    const error = compileError("type = 'x'\r\n  AND subject LIKE 5");
    expect(error.span).toMatchObject({ line: 2, column: 20 });
    expect(error.reason).toBe("expected a string literal after LIKE but found '5'");
  });

  it('reports an unterminated string at its opening quote', () => {
    expect(compileError("subject = 'abc").span).toMatchObject({ column: 11, length: 4 });
  });

  it('reports a character that is no part of CESQL', () => {
    const error = compileError('type = x ; 1');
    expect(error.reason).toBe('unexpected character ";"');
    expect(error.span.column).toBe(10);
  });

  it('reports the end of the expression when it stops early', () => {
    expect(compileError('LENGTH(').reason).toBe('expected an expression but found the end of the expression');
    expect(compileError('(1 + 2').reason).toContain('expected a closing parenthesis');
  });

  it('accepts integer literals in the 32-bit range only', () => {
    expect(evaluate('-2147483648').value).toBe(-2147483648);
    expect(evaluate('2147483647').value).toBe(2147483647);
    expect(compileError('2147483648').reason).toBe('integer literal 2147483648 is outside the 32-bit range');
    expect(compileError('-2147483649')).toBeInstanceOf(CesqlParseError);
  });

  it('reads 4-1 as a subtraction, not as 4 followed by -1', () => {
    expect(evaluate('4-1').value).toBe(3);
    expect(evaluate('4 - -1').value).toBe(5);
    expect(evaluate('+4').value).toBe(4);
    expect(compileError('+subject').reason).toContain('digits after a plus sign');
  });

  it('reads both quote escapes and the doubled delimiter in string literals', () => {
    expect(evaluate("'it''s'").value).toBe("it's");
    expect(evaluate("'it\\'s'").value).toBe("it's");
    expect(evaluate('"say ""hi"""').value).toBe('say "hi"');
    expect(evaluate('"a\\"b"').value).toBe('a"b');
    expect(evaluate("'a\\_b'").value).toBe('a\\_b');
  });

  it('treats keywords and function names case-insensitively and lower-cases attribute names', () => {
    expect(evaluate("eXiStS SUBJECT aNd LoWeR(TYPE) = 'x'").value).toBe(true);
  });

  it('rejects a LIKE pattern that is not a string literal', () => {
    expect(compileError("subject LIKE 'a' || 'b'")).toBeInstanceOf(CesqlParseError);
    expect(compileError('subject LIKE type')).toBeInstanceOf(CesqlParseError);
  });

  it('rejects an empty IN set, and keywords where a name belongs', () => {
    expect(compileError('type IN ()').reason).toContain('at least one value in the IN set');
    expect(compileError('EXISTS AND').reason).toContain('expected an attribute name');
    expect(compileError('my_ext = 1').reason).toBe(
      'attribute name my_ext may contain only letters and digits',
    );
    expect(compileError('f1(2)').reason).toContain('a function name');
  });

  it('applies AND, OR and XOR left to right at one precedence', () => {
    expect(evaluate('TRUE OR TRUE AND FALSE').value).toBe(false);
    expect(evaluate('FALSE AND TRUE OR TRUE').value).toBe(true);
    expect(evaluate('TRUE XOR TRUE OR FALSE').value).toBe(false);
  });

  it('binds NOT and minus tighter than LIKE and IN, and those tighter than arithmetic and comparison', () => {
    expect(evaluate('NOT FALSE IN (TRUE)').value).toBe(true);
    expect(evaluate('1 + 2 IN (2)').value).toBe(2); // 1 + (2 IN (2)) = 1 + TRUE
    expect(evaluate("'a' LIKE 'a' = TRUE").value).toBe(true);
    expect(evaluate('2 + 3 * 4 = 14 AND -2 * 3 = -6').value).toBe(true);
    expect(evaluate('10 - 4 - 3').value).toBe(3);
  });

  it(`refuses nesting deeper than ${maxExpressionDepth} levels but keeps long AND/OR chains flat`, () => {
    const deep = `${'('.repeat(maxExpressionDepth + 1)}1${')'.repeat(maxExpressionDepth + 1)}`;
    expect(compileError(deep).reason).toContain('nests deeper');
    expect(compileError(`${'NOT '.repeat(maxExpressionDepth + 1)}TRUE`)).toBeInstanceOf(CesqlParseError);
    expect(
      compileError(Array.from({ length: maxExpressionDepth + 1 }, () => '1').join(' + ')),
    ).toBeInstanceOf(CesqlParseError);
    const chain = Array.from({ length: 5_000 }, (_, i) => `type = 't${i}'`).join(' OR ');
    expect(compile(`${chain} OR type = 'x'`).matches(event)).toBe(true);
  });

  it('rejects a call that no function definition takes, at compile time, with its position', () => {
    const unknown = compileError("1 + NOPE('a')");
    expect(unknown).toBeInstanceOf(CesqlMissingFunctionError);
    expect(unknown.span).toMatchObject({ column: 5, length: 9 });
    expect(compileError('LENGTH()').kind).toBe('missingFunction');
    expect(compileError("SUBSTRING('a', 1, 2, 3)").kind).toBe('missingFunction');
  });

  it('throws a TypeError for an expression that is not a string', () => {
    expect(() => compile(42 as unknown as string)).toThrow(TypeError);
  });
});

describe('filters > cesql > integers', () => {
  it.each<[string, number, CesqlErrorKind[]]>([
    ['2147483647 + 1', 2147483647, ['math']],
    ['-2147483648 - 1', -2147483648, ['math']],
    ['65536 * 65536', 2147483647, ['math']],
    ['-65536 * 65536', -2147483648, ['math']],
    ['-(-2147483648)', 2147483647, ['math']],
    ['-2147483648 / -1', 2147483647, ['math']],
    ['-2147483648 % -1', 0, []],
    ['-7 / 2', -3, []],
    ['-7 % 2', -1, []],
    ['7 % -2', 1, []],
    ['0 * -1', 0, []],
    ['-4 % 2', 0, []],
    ['1 + 5 / 0', 0, ['math']],
  ])('computes %s as %d with errors %j', (expression, value, kinds) => {
    const result = evaluate(expression);
    expect(Object.is(result.value, value)).toBe(true);
    expect(result.kinds).toEqual(kinds);
  });

  it('reports a math error at the operation that raised it', () => {
    const [error] = compile('1 + 5 / 0').evaluate(event).errors;
    expect(error).toBeInstanceOf(CesqlMathError);
    expect(error?.span).toMatchObject({ column: 5, length: 5 });
  });
});

describe('filters > cesql > evaluate', () => {
  it('gives a missing attribute the zero value of the enclosing operation', () => {
    expect(evaluate('region')).toEqual({ value: false, kinds: ['missingAttribute'] });
    expect(evaluate('LENGTH(region)')).toEqual({ value: 0, kinds: ['missingAttribute'] });
    expect(evaluate('CONCAT(region, subject)')).toEqual({ value: '', kinds: ['missingAttribute'] });
    expect(evaluate("region NOT IN ('eu')")).toEqual({ value: false, kinds: ['missingAttribute'] });
    expect(evaluate('EXISTS region')).toEqual({ value: false, kinds: [] });
    const [error] = compile('region = 1').evaluate(event).errors;
    expect(error).toBeInstanceOf(CesqlMissingAttributeError);
    expect(error?.message).toBe('missing attribute: "region" (line 1, column 1)');
  });

  it('lets an operator that raised its own cast error go on with the zero value', () => {
    expect(evaluate("'abc' + 1")).toEqual({ value: 1, kinds: ['cast'] });
    expect(evaluate('10 OR TRUE')).toEqual({ value: true, kinds: ['cast'] });
    expect(evaluate("1 IN ('a', 1)")).toEqual({ value: true, kinds: ['cast'] });
    expect(evaluate("LEFT('abc', 'x')")).toEqual({ value: '', kinds: ['cast'] });
  });

  it('casts implicitly by the right operand of = and by the left operand of IN', () => {
    expect(evaluate("myint = '5'", { ...event, myint: 5 }).value).toBe(true);
    expect(evaluate('myint = 5', { ...event, myint: '5' }).value).toBe(true);
    expect(evaluate('type = flag', { ...event, flag: true, type: 'TRUE' }).value).toBe(true);
    expect(evaluate('flag = type', { ...event, flag: true, type: 'TRUE' }).value).toBe(false); // 'true' <> 'TRUE'
    expect(evaluate("myint IN ('4', '5')", { ...event, myint: 5 }).value).toBe(true);
    expect(evaluate('5 = TRUE')).toEqual({ value: false, kinds: ['cast'] });
  });

  it('stops IN at the first equal element, as a chain of OR would', () => {
    expect(evaluate("type IN ('x', region)")).toEqual({ value: true, kinds: [] });
    expect(evaluate("type IN ('y', region)")).toEqual({ value: false, kinds: ['missingAttribute'] });
  });

  it('reads extension values of every kind, and others by their String form', () => {
    const extensions = {
      ...event,
      mybool: true,
      myint: -3,
      myfloat: 1.5,
      when: new Date(Date.UTC(2026, 0, 2)),
    };
    expect(evaluate('mybool AND myint = -3', extensions).value).toBe(true);
    expect(evaluate('myfloat', extensions).value).toBe('1.5');
    expect(evaluate('when', extensions).value).toBe('2026-01-02T00:00:00.000Z');
    expect(evaluate('nothing', { ...event, nothing: null }).kinds).toEqual(['missingAttribute']);
  });

  it('reads own properties only, and never data', () => {
    expect(evaluate('EXISTS constructor OR EXISTS tostring').value).toBe(false);
    expect(evaluate('EXISTS data', { ...event, data: { a: 1 } }).value).toBe(false);
    expect(evaluate('data', { ...event, data: 'payload' }).kinds).toEqual(['missingAttribute']);
  });

  it('counts characters as code points in the string functions', () => {
    expect(evaluate("LENGTH('a😀b')").value).toBe(3);
    expect(evaluate("SUBSTRING('a😀b', 2, 1)").value).toBe('😀');
    expect(evaluate("LEFT('😀😀x', 2)").value).toBe('😀😀');
    expect(evaluate("RIGHT('x😀😀', 1)").value).toBe('😀');
    expect(evaluate("RIGHT('abc', 0)").value).toBe('');
    expect(evaluate("SUBSTRING('abc', 0, -1)")).toEqual({ value: '', kinds: ['functionEvaluation'] });
  });

  it('trims Unicode white space only', () => {
    expect(evaluate("TRIM('\u0085\u00a0 a b\u3000\t')").value).toBe('a b');
    expect(evaluate("TRIM('\ufeffa\u0007')").value).toBe('\ufeffa\u0007');
  });

  it('casts explicitly with INT, BOOL and STRING, and tests castability with IS_INT and IS_BOOL', () => {
    expect(evaluate("INT('+42') + INT(TRUE)").value).toBe(43);
    expect(evaluate("INT('2147483648')")).toEqual({ value: 0, kinds: ['cast'] });
    expect(evaluate("BOOL('fAlSe') OR BOOL(0)").value).toBe(false);
    expect(evaluate("STRING(-7) = '-7'").value).toBe(true);
    expect(evaluate("IS_INT('-12') AND NOT IS_INT('1.5') AND IS_BOOL('TRUE') AND NOT IS_BOOL(1)").value).toBe(
      true,
    );
  });

  it('returns a fresh error list per evaluation', () => {
    const expression = compile('region = 1');
    const first = expression.evaluate(event);
    const second = expression.evaluate({ ...event, region: 1 });
    expect(first.errors).toHaveLength(1);
    expect(second.errors).toHaveLength(0);
    expect(Object.isFrozen(second.errors)).toBe(true);
  });
});

describe('filters > cesql > matches', () => {
  it('matches only a Boolean true with no error', () => {
    expect(compile("type = 'x'").matches(event)).toBe(true);
    expect(compile('flag').matches({ ...event, flag: 'true' })).toBe(false);
    expect(compile('flag').matches({ ...event, flag: true })).toBe(true);
    expect(compile('10 OR TRUE').matches(event)).toBe(false);
    expect(compile('NOT region').matches(event)).toBe(false);
    expect(compile("region NOT LIKE 'eu%'").matches(event)).toBe(false);
  });

  it('runs over any source through an attribute reader', () => {
    const fields = new Map<string, unknown>([
      ['type', 'x'],
      ['subject', 'abc'],
    ]);
    const read: AttributeReader<Map<string, unknown>> = (source, name) => source.get(name);
    const expression = compile("type = 'x' AND subject LIKE 'a%'");
    expect(expression.matchesWith(fields, read)).toBe(true);
    expect(expression.evaluateWith(new Map([['type', 'x']]), read).errors.map((e) => e.kind)).toEqual([
      'missingAttribute',
    ]);
  });

  it('turns a reader that throws into a generic error, so the filter fails closed', () => {
    const expression = compile("type = 'x'");
    const read = () => {
      throw new Error('corrupt frame');
    };
    expect(expression.matchesWith(null, read)).toBe(false);
    const { value, errors } = expression.evaluateWith(null, read);
    expect(value).toBe(false);
    expect(errors[0]?.kind).toBe('generic');
    expect(errors[0]?.message).toContain('corrupt frame');
  });

  it('refuses to be evaluated again from inside its own evaluation', () => {
    const expression = compile("type = 'x'");
    const reentrant: AttributeReader<unknown> = () => expression.matches(event);
    expect(expression.evaluateWith(null, reentrant).errors[0]?.message).toContain('re-entrant');
    expect(expression.matches(event)).toBe(true);
  });
});

describe('filters > cesql > compile', () => {
  it('lists the attributes it reads and its static result type', () => {
    const expression = compile("EXISTS Region AND type = 'x' AND INT(hop) < INT(ttl) AND type <> 'y'");
    expect(expression.attributes).toEqual(['region', 'type', 'hop', 'ttl']);
    expect(expression.resultType).toBe('Boolean');
    expect(compile('subject').resultType).toBe('Any');
    expect(compile("CONCAT('a', subject)").resultType).toBe('String');
    expect(compile('1 + hop').resultType).toBe('Integer');
  });

  it('folds constant subtrees so that only attribute reads remain per event', () => {
    const reads: string[] = [];
    const read: AttributeReader<Record<string, unknown>> = (source, name) => {
      reads.push(name);
      return source[name];
    };
    const expression = compile("LENGTH(CONCAT('ab', 'c')) = 3 AND TRUE AND type = UPPER('x') OR FALSE");
    expect(expression.evaluateWith({ ...event, type: 'X' }, read)).toEqual({ value: true, errors: [] });
    expect(reads).toEqual(['type']);
  });

  it('drops what follows a constant false in AND and a constant true in OR', () => {
    const reads: string[] = [];
    const read: AttributeReader<unknown> = (_source, name) => {
      reads.push(name);
      return 'x';
    };
    expect(compile('type = type AND FALSE AND subject = 1').evaluateWith(null, read).value).toBe(false);
    expect(compile('FALSE AND subject = 1').resultType).toBe('Boolean');
    expect(compile("type = 'y' OR TRUE OR subject = 1").evaluateWith(null, read).value).toBe(true);
    expect(reads).toEqual(['type', 'type', 'type']);
  });

  it('keeps a constant subtree that raises an error, so every evaluation reports it', () => {
    const expression = compile("5 / 0 = 0 AND type = 'x'");
    for (let i = 0; i < 2; i++) {
      expect(expression.evaluate(event)).toMatchObject({ value: false, errors: [{ kind: 'math' }] });
    }
  });

  it('compiles IN over constants to a lookup for whichever type the attribute has', () => {
    const expression = compile("code IN (1, '2', TRUE)");
    expect(expression.matches({ ...event, code: 2 })).toBe(true);
    expect(expression.matches({ ...event, code: '1' })).toBe(true);
    expect(expression.matches({ ...event, code: 'true' })).toBe(true);
    expect(expression.matches({ ...event, code: 3 })).toBe(false);
    // To a Boolean, 1 and '2' do not cast implicitly, so the loop runs and raises that on its way to TRUE.
    expect(expression.evaluate({ ...event, code: true })).toMatchObject({
      value: true,
      errors: [{ kind: 'cast' }, { kind: 'cast' }],
    });
  });
});
