console.log('placeholder', process.argv.slice(2));
